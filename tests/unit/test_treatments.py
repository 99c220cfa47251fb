"""The treatment rules at their boundaries: gap, rest interval, clock trust."""

from __future__ import annotations

import pytest

from gunguard.core.reasons import RefusalReason
from gunguard.store import treatments as rules
from gunguard.store.treatments import RegionState, decide, outlook

GAP = 30 * 60.0
REST = 48 * 3600.0
T0 = 1_795_161_600.0  # 2026-11-20T08:00:00Z
LAST = T0 + 300.0  # last contact of the latest treatment


def state(last: float = LAST) -> RegionState:
    return RegionState(start=T0, last_contact=last)


def d(now: float, st: RegionState | None = None, newest: float | None = None) -> rules.Decision:
    st = state() if st is None else st
    newest = st.last_contact if newest is None else newest
    return decide("calf-left", st, now, newest_record=newest, gap_s=GAP, rest_s=REST)


def test_never_treated_is_new_whatever_the_clock_says():
    for st in (None, RegionState()):
        assert decide("calf-left", st, T0, newest_record=None, gap_s=GAP, rest_s=REST).kind == "new"
        # even a clock far behind the store cannot matter for a region with no history
        assert decide("calf-left", st, 0.0, newest_record=T0, gap_s=GAP, rest_s=REST).kind == "new"


@pytest.mark.parametrize(
    ("after_last", "kind"),
    [
        (0.0, "same"),
        (1.0, "same"),
        (GAP - 0.001, "same"),  # a gap shorter than treatment_gap_minutes: same treatment
        (GAP, "refused"),  # exactly the gap: the treatment has ended
        (REST - 0.001, "refused"),
        (REST, "new"),  # exactly rest_hours after the end: allowed
        (REST + 3600.0, "new"),
    ],
)
def test_gap_and_rest_boundaries(after_last: float, kind: str):
    decision = d(LAST + after_last)
    assert decision.kind == kind
    if kind == "refused":
        assert decision.reason == RefusalReason.REST_INTERVAL
        assert decision.until == LAST + REST
        assert "allowed from 2026-11-22T08:05:00Z" in decision.detail
        assert "48 h between treatments" in decision.detail


def test_rest_is_counted_from_the_last_contact_not_the_start():
    long = RegionState(start=T0 - 3600.0, last_contact=LAST)
    assert d(T0 - 3600.0 + REST + 1.0, long).kind == "refused"
    assert d(LAST + REST, long).kind == "new"


def test_clock_behind_newest_record_refuses_a_resting_region():
    newest = LAST + 600.0  # something else was stored later
    decision = d(newest - 0.001, newest=newest)
    assert decision.kind == "refused"
    assert decision.reason == RefusalReason.CLOCK_UNTRUSTED
    assert decision.until is None
    assert "earlier than the newest stored record (2026-11-20T08:15:00Z)" in decision.detail
    assert "synchronise it" in decision.detail
    # at exactly the newest record the clock is plausible again: same treatment
    assert d(newest, newest=newest).kind == "same"


def test_untrusted_clock_also_refuses_continuing_a_treatment():
    assert d(LAST - 7200.0).reason == RefusalReason.CLOCK_UNTRUSTED


def test_untrusted_clock_allows_a_region_whose_rest_is_provably_over():
    newest = LAST + REST  # even at the newest record's time the rest was over
    assert d(T0 - 86400.0, newest=newest).kind == "new"
    assert d(T0 - 86400.0, newest=newest - 0.001).reason == RefusalReason.CLOCK_UNTRUSTED


def test_clock_trusted():
    assert rules.clock_trusted(5.0, None)
    assert rules.clock_trusted(5.0, 5.0)
    assert not rules.clock_trusted(4.999, 5.0)


def test_iso_is_utc_with_z():
    assert rules.iso(T0) == "2026-11-20T08:00:00Z"


def o(now: float, *, used_up: bool = False, newest: float | None = None) -> rules.Outlook:
    return outlook(
        state(),
        now,
        newest_record=LAST if newest is None else newest,
        gap_s=GAP,
        rest_s=REST,
        dose_used_up=used_up,
    )


def test_outlook_matches_the_decision():
    assert outlook(None, T0, newest_record=None, gap_s=GAP, rest_s=REST, dose_used_up=False) == (
        rules.Outlook("never_treated", None, None)
    )
    assert o(LAST + 60.0) == rules.Outlook("continuing", LAST + REST, LAST + GAP)
    assert o(LAST + 60.0, used_up=True) == rules.Outlook("resting", LAST + REST, None)
    assert o(LAST + GAP) == rules.Outlook("resting", LAST + REST, None)
    assert o(LAST + REST) == rules.Outlook("rest_over", LAST + REST, None)
    assert o(LAST - 1.0).status == "clock_untrusted"
    assert o(LAST - 1.0, newest=LAST + REST).status == "rest_over"
