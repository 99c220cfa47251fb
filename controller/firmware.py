"""What the supervisor does with the gun firmware's link: cross-checks, commands, buttons.

The firmware is a second opinion, never the first: limits are judged on gunguard's own
sensors, and what the firmware reports is only compared with them. The GPIO power cut
never waits for this link; a stop sent over it is a second, independent way to halt
the motor.

* link not ``ok`` while armed: trip ``link_lost`` (``serial.required``), else a warning;
  arming is refused while a required link is down;
* firmware says the motor is on, the tachometer sees nothing past the spin-up grace:
  trip ``tach_stall`` (while the link is up this replaces the contact-only rule);
* reported and measured rate disagree by more than ``mismatch_tolerance`` for longer
  than ``mismatch_s``: trip ``speed_mismatch``;
* a region that requires an attachment refuses arming with another fitted;
* every trip sends STOP; arming sends the region's rate cap, then RELEASE; the dose
  warning is shown on the gun; buttons select the next/previous allowed region and
  a long MODE press resets a latched trip.
"""

from __future__ import annotations

import logging
from typing import Protocol

from controller import events
from controller import reasons as why
from controller.admission import Refusal
from controller.clock import Clock
from controller.config import SerialConfig
from controller.events import Event
from controller.serial_link import ButtonEvent, FirmwareStatus
from controller.serial_protocol import ButtonId, PressKind, StopReason, WarningCode
from controller.supervisor import Supervisor

log = logging.getLogger(__name__)

WRONG_ATTACHMENT = "wrong_attachment"
LINK_DOWN = "link_lost"

_STOP_FOR_TRIP = {
    why.OVERSPEED: StopReason.RATE_LIMIT,
    why.TACH_IMPLAUSIBLE: StopReason.SENSOR_FAULT,
    why.REGION_DOSE: StopReason.DOSE_LIMIT,
    why.OVERFORCE: StopReason.FORCE_LIMIT,
    why.FORCE_SENSOR_FAULT: StopReason.SENSOR_FAULT,
    why.TACH_STALL: StopReason.SENSOR_MISMATCH,
    why.SPEED_MISMATCH: StopReason.SENSOR_MISMATCH,
    why.POWER_SWITCH_FAULT: StopReason.SENSOR_FAULT,
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
        self._region_cursor: str | None = None
        link.send_rate_cap(0)
        link.send_stop(StopReason.NO_REGION)
        supervisor.add_tick_check(self.check)
        supervisor.add_admission_check(self.admit)
        supervisor.bus.subscribe(self.on_event)

    # -- arming -------------------------------------------------------------------------
    def admit(self, region: str, wall: float) -> Refusal | None:
        now = self._clock.monotonic()
        ok = self._link.state(now) == "ok"
        if not ok and self._cfg.required:
            return Refusal(
                LINK_DOWN, region, "no link to the gun's firmware (serial.required: true)"
            )
        wanted = self._sup.limits.regions[region].attachment
        if wanted is None:
            return None
        latest = self._link.latest_status
        if not ok or latest is None:
            return Refusal(
                WRONG_ATTACHMENT, region, f"needs the {wanted} attachment; the gun cannot say"
            )
        fitted = latest.status.attachment
        if fitted.label != wanted:
            return Refusal(
                WRONG_ATTACHMENT, region, f"needs the {wanted} attachment; {fitted.label} fitted"
            )
        return None

    # -- every tick --------------------------------------------------------------------
    def check(self, now: float) -> tuple[str, str] | None:
        state = self._link.state(now)
        if state != self._state:
            self._state = state
            self._sup.bus.emit(Event(now, events.LINK, {"state": state}))
            log.log(logging.INFO if state == "ok" else logging.WARNING, "firmware link %s", state)
        ok = state == "ok"
        self._sup.contact_stall_rule = not ok
        for button in self._link.pop_buttons():
            self._on_button(button)
        power_on = self._sup.power_on
        if not ok:
            self._stall_since = self._mismatch_since = None
            if not power_on:
                return None
            if self._cfg.required:
                return (
                    why.LINK_LOST,
                    f"no valid frame from the firmware within {self._timeout_ms:g} ms "
                    f"(link {state})",
                )
            if not self._warned_link:
                self._warned_link = True
                self._sup.bus.emit(
                    Event(now, events.WARNING, {"reason": why.LINK_LOST, "detail": f"link {state}"})
                )
            return None
        self._warned_link = False
        latest = self._link.latest_status
        if latest is None or not power_on:
            self._stall_since = self._mismatch_since = None
            return None
        return self._cross_check(now, latest)

    def _cross_check(self, now: float, latest: FirmwareStatus) -> tuple[str, str] | None:
        status = latest.status
        measured = self._sup.rate_ppm
        if status.motor_on and measured <= 0.0:
            # No percussion at all is the stall rule's case, not a rate disagreement.
            self._mismatch_since = None
            if self._stall_since is None:
                self._stall_since = now
            elif now - self._stall_since > self._cfg.spin_up_grace_s:
                return (
                    why.TACH_STALL,
                    f"firmware drives the motor ({status.reported_ppm} ppm reported) but the "
                    f"tachometer saw no percussion for {now - self._stall_since:.2f} s",
                )
            return None
        self._stall_since = None
        reported = float(status.reported_ppm) if status.motor_on else 0.0
        reference = max(measured, reported)
        if reference > 0.0 and abs(reported - measured) / reference > self._cfg.mismatch_tolerance:
            if self._mismatch_since is None:
                self._mismatch_since = now
            elif now - self._mismatch_since > self._cfg.mismatch_s:
                return (
                    why.SPEED_MISMATCH,
                    f"firmware reports {reported:.0f} ppm, tachometer measures {measured:.0f} ppm "
                    f"(tolerance {self._cfg.mismatch_tolerance:.0%}) for "
                    f"{now - self._mismatch_since:.2f} s",
                )
        else:
            self._mismatch_since = None
        return None

    # -- commands to the firmware --------------------------------------------------------
    def on_event(self, event: Event) -> None:
        link = self._link
        if event.kind == events.TRIP:
            link.send_rate_cap(0)
            link.send_stop(_STOP_FOR_TRIP.get(event.fields["reason"], StopReason.OTHER))
        elif event.kind == events.POWER:
            if event.fields["on"]:
                region = self._sup.limits.regions.get(self._sup.region or "")
                if region is not None:
                    link.send_rate_cap(int(region.cap_ppm))
                    link.send_release()
            elif self._sup.latched is None:
                link.send_rate_cap(0)
                link.send_stop(StopReason.NO_REGION)
        elif event.kind == events.WARNING and event.fields.get("reason") == why.DOSE_NEAR_LIMIT:
            link.send_warning(WarningCode.DOSE_NEAR_LIMIT)
        elif event.kind in (events.REGION, events.RESET):
            link.send_warning(WarningCode.NONE)
            if event.kind == events.REGION and event.fields.get("region"):
                self._region_cursor = event.fields["region"]

    # -- buttons -----------------------------------------------------------------------------
    def _on_button(self, button: ButtonEvent) -> None:
        if button.button == ButtonId.MODE and button.kind == PressKind.LONG:
            log.warning("gun button: long MODE press -> reset")
            self._sup.reset()
        elif button.button in (ButtonId.PLUS, ButtonId.MINUS) and button.kind == PressKind.SHORT:
            step = 1 if button.button == ButtonId.PLUS else -1
            region = self._next_region(step)
            if region is not None:
                log.info("gun button: select %s", region)
                self._sup.select_region(region)

    def _next_region(self, step: int) -> str | None:
        allowed = [n for n, r in self._sup.limits.regions.items() if r.allowed]
        if not allowed:
            return None
        current = self._sup.region or self._region_cursor
        if current not in allowed:
            return allowed[0] if step > 0 else allowed[-1]
        return allowed[(allowed.index(current) + step) % len(allowed)]
