"""The treatment rules, as pure functions: same treatment, new treatment, or refused.

A *treatment* of a region is its contact time with no gap as long as
``limits.treatment_gap_minutes``; within it the dose accumulates across pauses,
restarts and reboots. A *new* treatment of a region may start only ``rest_hours``
after the previous one ended (its last counted contact).

Wall time may be wrong on a Pi (no real-time clock). The store never saw the future,
so the true time is at least its newest record: when the clock reads earlier than
that, it cannot be trusted to judge a rest interval. A region whose rest is over even
measured at the newest record's time is still allowed; any other region that has a
history is refused ``clock_untrusted`` until the clock is plausible again.

No I/O here: :mod:`gunguard.store.ledger` feeds these functions from its store, and
``gunguard history`` uses :func:`outlook` to say when a region may next be treated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from gunguard.core.reasons import RefusalReason

SAME = "same"
NEW = "new"
REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class RegionState:
    """What the store knows about a region's latest treatment (None fields: never treated)."""

    start: float | None = None  # wall time of its first counted contact
    last_contact: float | None = None  # wall time of its last counted contact: its end

    @property
    def treated(self) -> bool:
        return self.last_contact is not None


@dataclass(frozen=True, slots=True)
class Decision:
    """What selecting a region at ``now`` would mean."""

    kind: Literal["same", "new", "refused"]
    reason: str | None = None  # REFUSED: rest_interval | clock_untrusted
    until: float | None = None  # REFUSED: wall time from which it may be allowed
    detail: str = ""


def iso(wall: float) -> str:
    """``2026-11-20T08:00:00Z``: how every wall time is shown to people and in JSON."""
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock_trusted(now: float, newest_record: float | None) -> bool:
    """False when the wall clock reads earlier than something already stored."""
    return newest_record is None or now >= newest_record


def decide(
    region: str,
    state: RegionState | None,
    now: float,
    *,
    newest_record: float | None,
    gap_s: float,
    rest_s: float,
) -> Decision:
    """Same treatment, new treatment, or a refusal, for selecting ``region`` at wall ``now``.

    ``newest_record`` is the newest wall time in the whole store (any region, any table);
    ``gap_s`` ends a treatment, ``rest_s`` must pass between two treatments.
    """
    if state is None or state.last_contact is None:
        return Decision(NEW)  # never treated: no rest to judge, whatever the clock says
    last = state.last_contact
    if not clock_trusted(now, newest_record):
        assert newest_record is not None
        if newest_record - last >= rest_s:
            return Decision(NEW)  # the rest was over even at the newest record's time
        return Decision(
            REFUSED,
            reason=RefusalReason.CLOCK_UNTRUSTED,
            detail=(
                f"the wall clock reads {iso(now)}, earlier than the newest stored record "
                f"({iso(newest_record)}): it stepped back, or the Pi started without a "
                f"synchronised time. {region} was last treated until {iso(last)}, and its "
                f"{rest_s / 3600:g} h rest cannot be judged on this clock; synchronise it "
                f"(NTP) and select again once it reads {iso(newest_record)} or later"
            ),
        )
    if now - last < gap_s:
        return Decision(SAME)
    until = last + rest_s
    if now < until:
        return Decision(
            REFUSED,
            reason=RefusalReason.REST_INTERVAL,
            until=until,
            detail=(
                f"{region} was last treated until {iso(last)}; the guidance asks for "
                f"{rest_s / 3600:g} h between treatments of one area: allowed from {iso(until)}"
            ),
        )
    return Decision(NEW)


@dataclass(frozen=True, slots=True)
class Outlook:
    """When a region may next be treated (for ``gunguard history``)."""

    status: Literal["never_treated", "continuing", "resting", "rest_over", "clock_untrusted"]
    next_at: float | None  # wall time: a new treatment allowed from (None: now)
    continue_until: float | None  # wall time until which the current one may resume


def outlook(
    state: RegionState | None,
    now: float,
    *,
    newest_record: float | None,
    gap_s: float,
    rest_s: float,
    dose_used_up: bool,
) -> Outlook:
    """The same rules as :func:`decide`, phrased as "when next" rather than "now"."""
    if state is None or state.last_contact is None:
        return Outlook("never_treated", None, None)
    last = state.last_contact
    next_at = last + rest_s
    if not clock_trusted(now, newest_record):
        assert newest_record is not None
        if newest_record - last >= rest_s:
            return Outlook("rest_over", next_at, None)
        return Outlook("clock_untrusted", next_at, None)
    if now - last < gap_s and not dose_used_up:
        return Outlook("continuing", next_at, last + gap_s)
    if now < next_at:
        return Outlook("resting", next_at, None)
    return Outlook("rest_over", next_at, None)
