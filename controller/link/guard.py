"""What the supervisor does with the gun firmware's link: cross-checks, commands, buttons.

The firmware is a second opinion, never the first: limits are judged on gunguard's own
sensors, and what the firmware reports is only compared with them. The GPIO power cut
never waits for this link; a stop sent over it is a second, independent way to halt
the motor.

Asked every tick (:meth:`FirmwareGuard.check`, a :class:`~gunguard.core.plugins.Verdict`):

* link not ``ok`` while armed: trip ``link_lost`` (``serial.required``), else a warning;
  arming is refused while a required link is down;
* firmware says the motor is on, the tachometer sees nothing past the spin-up grace:
  trip ``tach_stall`` (while the link is up this replaces the contact-only rule);
* firmware says the motor is on while gunguard's power is off, for longer than
  :data:`MOTOR_OFF_GRACE_S`: trip ``power_state_mismatch``;
* reported and measured rate disagree by more than ``mismatch_tolerance`` for longer
  than ``mismatch_s``: trip ``speed_mismatch`` (naming ``pulses_per_percussion`` when
  the two stay at a simple ratio);
* a region that requires an attachment refuses arming with another fitted.

Told every event, outside the supervisor's lock (:meth:`FirmwareGuard.on_event`), it
keeps the firmware holding what the supervisor's state needs: the armed region's cap
and code, then RELEASE; cap 0 and STOP otherwise (the STOP naming the trip). The dose
warning is shown on the gun, and so is a guided session's step target (WARN 1, dose
near limit: the step's time is up; docs/serial-protocol.md, §8.8). Buttons become
intents: PLUS/MINUS step through the allowed regions (:func:`gunguard.core.regions.step`),
a long MODE press resets a latched trip or, with none latched, confirms
(:class:`~gunguard.core.plugins.LongPress`: a guided session moves on).
"""

from __future__ import annotations

import logging
from typing import Protocol

from gunguard.config.schema import SerialConfig
from gunguard.core import events
from gunguard.core.admission import Refusal
from gunguard.core.clock import Clock
from gunguard.core.events import Event, State
from gunguard.core.plugins import LongPress, Step, Verdict
from gunguard.core.reasons import RefusalReason, TripReason, WarningReason
from gunguard.core.supervisor import Supervisor
from gunguard.link.protocol import REGION_CODES, ButtonId, PressKind, StopReason, WarningCode
from gunguard.link.serial_link import ButtonEvent, FirmwareStatus

log = logging.getLogger(__name__)

#: After gunguard cuts power, the firmware may still report its drive on until its next
#: STATUS after the STOP (STATUS every 100 ms, commands resent every 200 ms): longer than
#: this, "motor on" with gunguard's power off is a fault (``power_state_mismatch``).
MOTOR_OFF_GRACE_S = 0.5
#: Ratios of measured to reported rate that point at a wrong ``pulses_per_percussion``.
_PPP_RATIOS = (1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 2, 2, 3, 4)
_RATIO_TOLERANCE = 0.04

#: The STOP reason the firmware is told for each trip (docs/serial-protocol.md, §8.6,
#: checked by tests/unit/test_protocol_doc.py); any other trip: OTHER.
STOP_FOR_TRIP = {
    TripReason.OVERSPEED: StopReason.RATE_LIMIT,
    TripReason.TACH_IMPLAUSIBLE: StopReason.SENSOR_FAULT,
    TripReason.REGION_DOSE: StopReason.DOSE_LIMIT,
    TripReason.OVERFORCE: StopReason.FORCE_LIMIT,
    TripReason.FORCE_SENSOR_FAULT: StopReason.SENSOR_FAULT,
    TripReason.TACH_STALL: StopReason.SENSOR_MISMATCH,
    TripReason.SPEED_MISMATCH: StopReason.SENSOR_MISMATCH,
    TripReason.POWER_STATE_MISMATCH: StopReason.SENSOR_MISMATCH,
    TripReason.POWER_SWITCH_FAULT: StopReason.SENSOR_FAULT,
}


class Link(Protocol):
    """The Pi side of the link: a LinkEndpoint (virtual time) or a SerialTransport."""

    def state(self, now: float) -> str: ...

    @property
    def latest_status(self) -> FirmwareStatus | None: ...

    def pop_buttons(self) -> list[ButtonEvent]: ...

    def send_rate_cap(self, max_ppm: int, region: int | None = None) -> None: ...

    def send_stop(self, reason: StopReason) -> None: ...

    def send_release(self) -> None: ...

    def send_warning(self, code: WarningCode) -> None: ...


class FirmwareGuard:
    """Plugs the firmware link into a supervisor through its public seams."""

    def __init__(self, supervisor: Supervisor, link: Link, cfg: SerialConfig, clock: Clock) -> None:
        self._sup = supervisor
        self._link = link
        self._cfg = cfg
        self._clock = clock
        self._timeout_ms = cfg.heartbeat_timeout_ms
        self._state = "down"
        self._warned_link = False
        self._stall_since: float | None = None
        self._mismatch_since: float | None = None
        self._unpowered_on_since: float | None = None
        #: What the firmware was last told to hold: (cap, region code, stop reason or None).
        self._told: tuple[int, int, StopReason | None] | None = None
        # At start the whole wish is asserted (a firmware that kept running while
        # gunguard restarted may still show an old warning); later only changes.
        self._tell(0, 0, StopReason.NO_REGION)
        self._warning = WarningCode.NONE
        link.send_warning(WarningCode.NONE)
        supervisor.add_tick_check(self.check)
        supervisor.add_admission_check(self.admit)
        supervisor.bus.subscribe(self.on_event)

    # -- arming -------------------------------------------------------------------------
    def admit(self, region: str, wall: float) -> Refusal | None:
        now = self._clock.monotonic()
        ok = self._link.state(now) == "ok"
        if not ok and self._cfg.required:
            return Refusal(
                RefusalReason.LINK_LOST,
                region,
                "no link to the gun's firmware (serial.required: true)",
            )
        wanted = self._sup.limits.regions[region].attachment
        if wanted is None:
            return None
        latest = self._link.latest_status
        if not ok or latest is None:
            return Refusal(
                RefusalReason.WRONG_ATTACHMENT,
                region,
                f"needs the {wanted} attachment; the gun cannot say",
            )
        fitted = latest.status.attachment
        if fitted.label != wanted:
            return Refusal(
                RefusalReason.WRONG_ATTACHMENT,
                region,
                f"needs the {wanted} attachment; {fitted.label} fitted",
            )
        return None

    # -- every tick (inside the supervisor's tick: quick, no I/O) ---------------------------
    def check(self, now: float) -> Verdict | None:
        state = self._link.state(now)
        if state != self._state:
            self._state = state
            self._sup.announce(events.LINK, state=state)
            log.log(logging.INFO if state == "ok" else logging.WARNING, "firmware link %s", state)
        ok = state == "ok"
        for button in self._link.pop_buttons():
            self._on_button(button)
        power_on = self._sup.power_on
        if not ok:
            self._stall_since = self._mismatch_since = self._unpowered_on_since = None
            if not power_on:
                return None
            if self._cfg.required:
                return Verdict(
                    trip=(
                        TripReason.LINK_LOST,
                        f"no valid frame from the firmware within {self._timeout_ms:g} ms "
                        f"(link {state})",
                    )
                )
            if not self._warned_link:
                self._warned_link = True
                self._sup.announce(
                    events.WARNING, reason=WarningReason.LINK_LOST, detail=f"link {state}"
                )
            return None
        self._warned_link = False
        latest = self._link.latest_status
        if latest is None:
            self._stall_since = self._mismatch_since = self._unpowered_on_since = None
            return Verdict(covers_stall=True)
        if not power_on:
            self._stall_since = self._mismatch_since = None
            return self._unpowered_check(now, latest)
        self._unpowered_on_since = None
        return self._cross_check(now, latest)

    def _unpowered_check(self, now: float, latest: FirmwareStatus) -> Verdict:
        if not latest.status.motor_on:
            self._unpowered_on_since = None
            return Verdict(covers_stall=True)
        if self._unpowered_on_since is None:
            self._unpowered_on_since = now
        elif now - self._unpowered_on_since > MOTOR_OFF_GRACE_S:
            return Verdict(
                trip=(
                    TripReason.POWER_STATE_MISMATCH,
                    f"firmware reports its motor on ({latest.status.reported_ppm} ppm) while "
                    f"gunguard's motor power has been off for "
                    f"{now - self._unpowered_on_since:.2f} s: the power switch or the firmware "
                    "is wrong",
                ),
                covers_stall=True,
            )
        return Verdict(covers_stall=True)

    def _cross_check(self, now: float, latest: FirmwareStatus) -> Verdict:
        status = latest.status
        measured = self._sup.rate_ppm
        if status.motor_on and measured <= 0.0:
            # No percussion at all is the stall rule's case, not a rate disagreement.
            self._mismatch_since = None
            if self._stall_since is None:
                self._stall_since = now
            elif now - self._stall_since > self._cfg.spin_up_grace_s:
                return Verdict(
                    trip=(
                        TripReason.TACH_STALL,
                        f"firmware drives the motor ({status.reported_ppm} ppm reported) but "
                        f"the tachometer saw no percussion for {now - self._stall_since:.2f} s",
                    ),
                    covers_stall=True,
                )
            return Verdict(covers_stall=True)
        self._stall_since = None
        reported = float(status.reported_ppm) if status.motor_on else 0.0
        reference = max(measured, reported)
        if reference > 0.0 and abs(reported - measured) / reference > self._cfg.mismatch_tolerance:
            if self._mismatch_since is None:
                self._mismatch_since = now
            elif now - self._mismatch_since > self._cfg.mismatch_s:
                return Verdict(
                    trip=(
                        TripReason.SPEED_MISMATCH,
                        f"firmware reports {reported:.0f} ppm, tachometer measures "
                        f"{measured:.0f} ppm (tolerance {self._cfg.mismatch_tolerance:.0%}) for "
                        f"{now - self._mismatch_since:.2f} s{_ratio_hint(measured, reported)}",
                    ),
                    covers_stall=True,
                )
        else:
            self._mismatch_since = None
        return Verdict(covers_stall=True)

    # -- commands to the firmware (an event listener: outside the supervisor's lock) --------
    def on_event(self, event: Event) -> None:
        state = event.state
        if state is not None:
            self._sync(state, event)
        if event.kind == events.WARNING and event.fields.get("reason") == (
            WarningReason.DOSE_NEAR_LIMIT
        ):
            self._show(WarningCode.DOSE_NEAR_LIMIT)
        elif event.kind == events.SESSION and event.fields.get("action") == "target":
            # No code of its own (a new one would be protocol version 2, §6): a step's
            # target is its time being up, shown as "dose near limit" (§8.8).
            self._show(WarningCode.DOSE_NEAR_LIMIT)
        elif event.kind in (events.REGION, events.RESET):
            self._show(WarningCode.NONE)

    def _show(self, code: WarningCode) -> None:
        """WARN only when the warning changes (the link repeats it until confirmed)."""
        if code != self._warning:
            self._warning = code
            self._link.send_warning(code)

    def _sync(self, state: State, event: Event) -> None:
        """Make the firmware hold what ``state`` needs: the armed region's cap, or a stop."""
        if state.tripped is not None:
            reason = TripReason(state.tripped)
            self._tell(0, 0, STOP_FOR_TRIP.get(reason, StopReason.OTHER))
        elif state.power_on and state.region is not None:
            region = self._sup.limits.regions.get(state.region)
            cap = int(region.cap_ppm) if region is not None else 0
            self._tell(cap, REGION_CODES.get(state.region, 0), None)
        else:
            self._tell(0, 0, StopReason.NO_REGION)

    def _tell(self, cap: int, code: int, stop: StopReason | None) -> None:
        wanted = (cap, code, stop)
        told = self._told
        if wanted == told:
            return
        self._told = wanted
        link = self._link
        if stop is not None:
            link.send_stop(stop)  # first: a stop never waits behind a cap
            link.send_rate_cap(cap, code or None)
        else:
            link.send_rate_cap(cap, code or None)
            if told is None or told[2] is not None:
                link.send_release()  # the link puts RELEASE after the cap on the wire

    def shutdown(self) -> None:
        """gunguard is stopping: cap 0 and STOP(shutdown) (the transport flushes them)."""
        self._told = (0, 0, StopReason.SHUTDOWN)
        self._link.send_stop(StopReason.SHUTDOWN)
        self._link.send_rate_cap(0, None)

    # -- buttons -----------------------------------------------------------------------------
    def _on_button(self, button: ButtonEvent) -> None:
        if button.button == ButtonId.MODE and button.kind == PressKind.LONG:
            self._sup.post_intent(LongPress("gun button MODE (long)"))
        elif button.button in (ButtonId.PLUS, ButtonId.MINUS) and button.kind == PressKind.SHORT:
            step = 1 if button.button == ButtonId.PLUS else -1
            self._sup.post_intent(Step(step, f"gun button {button.button.name}"))


def _ratio_hint(measured: float, reported: float) -> str:
    """A hint when the measured rate stays at a simple ratio of the firmware's."""
    if measured <= 0.0 or reported <= 0.0:
        return ""
    ratio = measured / reported
    for r in _PPP_RATIOS:
        if abs(ratio - r) <= _RATIO_TOLERANCE * r:
            return (
                f"; the ratio {ratio:.2f} suggests hardware.tachometer.pulses_per_percussion "
                "is wrong (recalibrate: gunguard calibrate)"
            )
    return ""
