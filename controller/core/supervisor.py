"""The safety supervisor: every limit judged on gunguard's own sensors, one power decision.

Read this file top to bottom to know when the motor has power:

* :meth:`Supervisor._power_wanted` is the only place that decides the power output:
  on only while an admitted region is selected, no trip is latched and the
  supervisor is running. Everything else changes those three facts and calls
  :meth:`Supervisor._apply_power`.
* :meth:`Supervisor.trip` is the one latched, idempotent trip: it cuts power first
  (without waiting for a lock), then latches the reason, then tells the listeners.
  Only :meth:`Supervisor.reset` clears it, and a reset deselects the region, so it
  never starts the motor by itself.
* :meth:`Supervisor.tick` is the control-loop body (intents, force, rate, dose,
  stall, loop gap, plug-in checks); :meth:`Supervisor.on_tach_edge` judges overspeed
  and tach plausibility on the edge itself, so a cut never waits for the next tick.

Time comes from the injected clock; edge timestamps come from the pin driver in the
same monotonic domain. All state changes happen under one re-entrant lock, because
edges arrive on gpiozero's callback thread while the loop ticks on its own. Events
are collected under the lock and handed to the bus when the outermost locked
section ends, stamped with the finished state; listeners run after the lock is
released (:mod:`gunguard.core.events`). Other components take part through
:mod:`gunguard.core.plugins`: checks that return verdicts, intents applied at the
start of the next tick.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from gunguard.core import admission, events
from gunguard.core import regions as R
from gunguard.core.admission import Refusal
from gunguard.core.book import MemoryBook, TreatmentBook
from gunguard.core.ceilings import (
    BUILT_IN_BANDS,
    DOSE_WARNING,
    LOW_HIGH_BOUNDARY_PPM,
    POWER_SWITCH_CHECK_S,
)
from gunguard.core.clock import Clock
from gunguard.core.dose import BACKSTOP_FACTOR, DOSE_FULL, RegionDose, band_seconds, bucket_of
from gunguard.core.events import Event, EventBus, State
from gunguard.core.force import Contact, ForceWindow
from gunguard.core.limits import (
    CONTACT_HOLD_S,
    FORCE_WINDOW_S,
    IMPLAUSIBLE_RATE_FACTOR,
    OVERSPEED_CONFIRM,
    RATE_WINDOW_S,
    Limits,
    RegionLimits,
)
from gunguard.core.plausibility import force_fault
from gunguard.core.plugins import (
    AdmissionCheck,
    Configure,
    Intent,
    LongPress,
    Reset,
    Select,
    Step,
    TickCheck,
)
from gunguard.core.ports import ForceInput, PowerOutput
from gunguard.core.reasons import RefusalReason, TripReason, WarningReason
from gunguard.core.tach import TachRateMeter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Trip:
    reason: TripReason
    detail: str
    t: float


@dataclass(frozen=True)
class Snapshot:
    """A consistent view for status displays (never used for decisions)."""

    t: float
    state: str  # idle | armed | tripped
    region: str | None
    power_on: bool
    rate_ppm: float
    force_n: float
    cap_ppm: float | None
    max_force_n: float | None
    trip_reason: str | None
    trip_detail: str | None
    doses: dict[str, dict[str, Any]] = field(default_factory=dict)


class Supervisor:
    """Sensors in, motor power out, limits enforced.

    ``force`` and ``switch`` are the drivers; the tachometer driver is wired to
    :meth:`on_tach_edge`. The supervisor owns neither the loop timing nor the pins'
    life cycle: :mod:`gunguard.core.loop` ticks it and its owner closes the hardware.
    """

    def __init__(
        self,
        limits: Limits,
        clock: Clock,
        *,
        force: ForceInput,
        switch: PowerOutput,
        bus: EventBus | None = None,
        book: TreatmentBook | None = None,
        config_tag: str = "",
    ) -> None:
        self._lock = threading.RLock()
        self._switch = switch
        switch.off()  # de-energised before anything else can happen
        self._clock = clock
        self._force = force
        self.bus = bus or EventBus()
        self.book = book or MemoryBook()
        self.bus.subscribe(self.book.on_event)
        self._admission_checks: list[AdmissionCheck] = []
        self._tick_checks: list[TickCheck] = []
        self._busy_checks = 0  # tick checks that need ticks even while nothing is armed
        self._intents: deque[Intent] = deque()
        self._pending_config: Configure | None = None
        self._outbox: list[Event] = []
        self._depth = 0  # nesting of locked sections on the owning thread

        self._running = True
        self._power_on = False
        self._trip: Trip | None = None
        self._trip_reasons: set[str] = set()
        self._region: RegionLimits | None = None
        self._dose: RegionDose | None = None
        self._doses: dict[str, RegionDose] = {}
        self._meter: TachRateMeter | None = None

        now = clock.monotonic()
        self._last_tick = now
        self._power_off_since = now
        #: Force over the last second: time above the limit, and the mean (overforce).
        self._force_window = ForceWindow(FORCE_WINDOW_S)
        self._contact = Contact(0.0, 0.0, CONTACT_HOLD_S)  # levels set by configure()
        self._stall_since: float | None = None
        #: The region just disarmed while its motor may still run on (coasting, in contact):
        #: counted against it until the tach reads stopped.
        self._coasting: RegionDose | None = None
        self._last_raw = -1.0
        self._raw_since = now
        #: The dose bucket of the last rate counted (:func:`bucket_of`, remembered).
        self._bucket_rate = 0.0
        self._bucket = 0
        self.rate_ppm = 0.0
        self.force_n = 0.0
        self.configure(limits, config_tag)
        restored = self.book.restored_trip()
        if restored is not None:
            self.trip(*restored)

    # -- locked sections and their events ---------------------------------------------------
    def _enter(self) -> None:
        """Take the lock for a change (re-entrant: nested sections only count)."""
        self._lock.acquire()
        self._depth += 1

    def _exit(self) -> None:
        """End a change; the outermost one hands its events to the bus, then, with the
        lock released, has them delivered (no listener ever runs under the lock)."""
        self._depth -= 1
        outbox = self._outbox
        posted = self._depth == 0 and bool(outbox)
        if posted:
            trip = self._trip
            state = State(self._power_on, self.region, trip.reason if trip else None)
            post = self.bus.post
            for event in outbox:
                post(Event(event.t, event.kind, event.fields, state))
            outbox.clear()
        self._lock.release()
        if posted and not self._lock._is_owned():  # type: ignore[attr-defined]
            self.bus.flush()

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """``with``-form of :meth:`_enter` / :meth:`_exit` (the hot paths call them inline)."""
        self._enter()
        try:
            yield
        finally:
            self._exit()

    def _emit(self, kind: str, **fields: Any) -> None:
        """Collect an event (callers hold the lock)."""
        self._outbox.append(Event(self._clock.monotonic(), kind, fields))

    def _warn(self, reason: WarningReason, region: str | None, detail: str, **more: Any) -> None:
        """A warning: logged (with journal fields) and announced."""
        log.warning(
            "warning %s: %s", reason, detail, extra=self._fields("warning", reason, detail, region)
        )
        self._emit(events.WARNING, reason=reason, region=region, detail=detail, **more)

    def _fields(
        self, event: str, reason: str, detail: str, region: str | None = None
    ) -> dict[str, Any]:
        """Structured journal fields for a trip, refusal or warning (gunguard.service.logsetup)."""
        armed = self._region
        return {
            "journal": {
                "GUNGUARD_EVENT": event,
                "GUNGUARD_REASON": str(reason),
                "GUNGUARD_DETAIL": detail,
                "GUNGUARD_REGION": region or (armed.name if armed is not None else None),
                "GUNGUARD_RATE_PPM": f"{self.rate_ppm:.0f}",
                "GUNGUARD_FORCE_N": f"{self.force_n:.1f}",
                "GUNGUARD_POWER": "on" if self._power_on else "off",
            }
        }

    def announce(self, kind: str, **fields: Any) -> None:
        """A plug-in's event (a link state, a warning), delivered like the supervisor's."""
        with self._changing():
            self._emit(kind, **fields)

    # -- configuration ------------------------------------------------------------------
    def configure(self, limits: Limits, tag: str = "") -> None:
        """Adopt new limits (at start, and on reload). The armed region must pass the new
        rules, or it is disarmed; counted seconds carry over to the new limits."""
        with self._changing():
            self._configure(limits, tag)

    def _configure(self, limits: Limits, tag: str) -> None:
        first = self._meter is None
        self.limits = limits
        self.config_tag = tag
        old = self._meter
        if old is not None and old.pulses_per_percussion == limits.pulses_per_percussion:
            old.reconfigure(limits.stopped_after_s)  # what was measured is still judged
        else:
            self._meter = TachRateMeter(
                limits.pulses_per_percussion,
                limits.stopped_after_s,
                RATE_WINDOW_S,
                OVERSPEED_CONFIRM,
            )
            if old is not None and old.last_edge is not None:
                self._meter.last_edge = old.last_edge
        contact = self._contact
        self._contact = Contact(limits.contact_force_n, limits.contact_release_n, CONTACT_HOLD_S)
        self._contact.active = contact.active
        # The same counted time, judged by the tighter of the old and new allowances.
        self._doses = {
            n: _carry_dose(limits.regions[n], d)
            for n, d in self._doses.items()
            if n in limits.regions
        }
        for name, dose in self._doses.items():
            self.book.judged_by(name, dose.allowance)
        if not first:
            self._emit(events.CONFIG, tag=tag)
        if self._region is not None:
            self._dose = self._doses.get(self._region.name)
        if self._coasting is not None:
            self._coasting = self._doses.get(self._coasting.limits.name)
        if self._region is not None and self._trip is None:
            name = self._region.name
            refusal = self._admit_safely(name)
            if refusal is None:
                self._region = limits.regions[name]
                self._dose = self._doses.get(name)
            else:
                self._deselect()
                self._emit(events.REFUSED, **_refusal_fields(refusal))
            self._apply_power(self._clock.monotonic())

    def add_admission_check(self, check: AdmissionCheck) -> None:
        """Another component's veto on arming a region (called with region, wall time)."""
        self._admission_checks.append(check)

    def add_tick_check(self, check: TickCheck, *, idle_safe: bool = False) -> None:
        """Another component's per-tick check; its :class:`Verdict` may trip.

        ``idle_safe``: it has nothing to do while :meth:`idle` holds (no region armed,
        nothing moving), so virtual time may skip ticks then. A check that watches
        something outside the supervisor (the firmware link) is not.
        """
        self._tick_checks.append(check)
        if not idle_safe:
            self._busy_checks += 1

    def post_intent(self, intent: Intent) -> None:
        """Ask for a change from any thread; applied at the start of the next tick."""
        self._intents.append(intent)

    # -- the power decision ---------------------------------------------------------------
    def _power_wanted(self) -> bool:
        """THE power decision: an admitted region, no latched trip, supervisor running."""
        return self._region is not None and self._trip is None and self._running

    def _apply_power(self, now: float) -> None:
        want = self._power_wanted()
        if want == self._power_on:
            return
        if want:
            self._switch.on(now)
        else:
            self._switch.off()
            self._power_off_since = now
        self._power_on = want
        self._emit(events.POWER, on=want)

    @property
    def power_on(self) -> bool:
        return self._power_on

    # -- the trip -------------------------------------------------------------------------
    def trip(self, reason: TripReason | str, detail: str = "") -> bool:
        """Cut power, latch ``reason``, tell everyone. Idempotent per reason.

        Safe from any thread. Returns False when ``reason`` was already latched. A
        different reason while latched is announced too (a welded switch after an
        overspeed matters), but the first reason stays the latch's reason.
        """
        self._switch.off()  # first, unconditionally: needs no lock and is idempotent
        with self._changing():
            self._switch.off()  # again under the lock: a tick may have re-energised meanwhile
            reason = TripReason(reason)
            if reason in self._trip_reasons:
                return False
            now = self._clock.monotonic()
            self._trip_reasons.add(reason)
            if self._trip is None:
                self._trip = Trip(reason, detail, now)
            if self._power_on:
                self._power_on = False
                self._power_off_since = now
                self._emit(events.POWER, on=False)
            level = logging.CRITICAL if reason.critical else logging.ERROR
            log.log(
                level, "TRIP %s: %s", reason, detail, extra=self._fields("trip", reason, detail)
            )
            self._emit(events.TRIP, reason=reason, detail=detail)
            return True

    @property
    def latched(self) -> Trip | None:
        return self._trip

    def reset(self) -> list[str]:
        """Clear a latched trip; returns every reason it cleared (empty: nothing latched).

        Power stays off: the region must be selected again.
        """
        with self._changing():
            return self._reset()

    def _reset(self) -> list[str]:
        if self._trip is None:
            return []
        cleared = [
            self._trip.reason,
            *sorted(r for r in self._trip_reasons if r != self._trip.reason),
        ]
        self._trip = None
        self._trip_reasons.clear()
        # The rate and force windows stay: what the person received in the last second
        # still counts after a reset (a reset and a quick re-arm restart no window).
        self._deselect()
        self._stall_since = None
        log.warning("reset: cleared trip %s", ", ".join(cleared))
        self._emit(events.RESET, cleared=cleared[0], reasons=cleared)
        self._apply_power(self._clock.monotonic())
        return cleared

    # -- operator actions -------------------------------------------------------------------
    def select_region(self, name: str | None) -> Refusal | None:
        """Select (and so arm) a region, or deselect with None. Returns a refusal, if any.

        A refused selection leaves no region selected: power is off afterwards.
        """
        with self._changing():
            return self._select(name)

    def _select(self, name: str | None) -> Refusal | None:
        now = self._clock.monotonic()
        if name is None:
            self._deselect()
            self._apply_power(now)
            return None
        refusal = self._admit_safely(name)
        if refusal is not None:
            self._deselect()
            self._apply_power(now)
            log.warning(
                "refused %s: %s (%s)",
                name,
                refusal.reason,
                refusal.detail,
                extra=self._fields("refused", refusal.reason, refusal.detail, name),
            )
            self._emit(events.REFUSED, **_refusal_fields(refusal))
            return refusal
        self._region = self.limits.regions[name]
        # The book decides which treatment this is (a new one after the rest).
        counted = self.book.current(name, self._clock.wall())
        previous = self._doses.get(name)
        dose = RegionDose(self._region, counted)
        dose.warned = previous is not None and previous.warned and bool(counted)
        self._doses[name] = dose
        self._dose = dose
        self._coasting = None
        self.book.judged_by(name, dose.allowance)
        self._emit(events.REGION, region=name)
        near = R.NEAR_ARTERY.get(name)
        if near is not None:
            self._warn(WarningReason.NEAR_ARTERY, name, f"{name}: keep away from {near}")
        self._apply_power(now)
        return None

    def stop(self) -> None:
        """Disarm (deselect the region). Not a trip: nothing to reset."""
        self.select_region(None)

    def _deselect(self) -> None:
        if self._region is not None:
            self._coasting = self._dose
            self._region = None
            self._dose = None
            self._emit(events.REGION, region=None)

    def _admit_safely(self, name: str) -> Refusal | None:
        """:meth:`_admit`, where a broken check refuses: it never leaves power on."""
        try:
            return self._admit(name)
        except Exception as exc:
            log.exception("admission check failed for %s", name)
            return Refusal(RefusalReason.INTERNAL_ERROR, name, f"{type(exc).__name__}: {exc}")

    def _admit(self, name: str) -> Refusal | None:
        """Every rule that can refuse a region, cheapest and most basic first."""
        if self._trip is not None:
            return Refusal(
                RefusalReason.TRIP_LATCHED,
                name,
                f"trip {self._trip.reason} is latched: reset first",
            )
        wall = self._clock.wall()
        today = dt.datetime.fromtimestamp(wall).date()
        refusal = admission.screen(name, self.limits, today)
        if refusal is not None:
            return refusal
        raw = self._force.read_raw()
        fault = force_fault(raw, self._force.newtons(raw), self.limits)
        if fault is not None:
            return Refusal(RefusalReason.FORCE_SENSOR_FAULT, name, fault)
        over = self._over_limit(self.limits.regions[name])
        if over is not None:
            return Refusal(RefusalReason.OVER_LIMIT, name, over)
        refusal = self.book.admit(name, wall)
        if refusal is not None:
            return refusal
        dose = RegionDose(self.limits.regions[name], self.book.current(name, wall))
        if dose.exhausted or dose.backstop_exhausted:
            return Refusal(RefusalReason.REGION_DOSE, name, "this treatment's dose is used up")
        for check in self._admission_checks:
            refusal = check(name, wall)
            if refusal is not None:
                return refusal
        return None

    def _over_limit(self, region: RegionLimits) -> str | None:
        """What the person has just received is already over ``region``'s limits (a reset
        and a quick re-arm, a switch to a stricter region): arming would trip at once."""
        now = self._clock.monotonic()
        meter = self._meter
        assert meter is not None
        if meter.rate_at(now) > 0.0:
            mean = meter.mean_ppm
            worst = max(meter.slowest_ppm, mean if mean is not None else 0.0)
            if worst > region.trip_ppm:
                return (
                    f"the gun runs at {worst:.0f} ppm (the last {RATE_WINDOW_S:g} s), over "
                    f"{region.name}'s cap {region.cap_ppm:g} ppm: slow it down, then select"
                )
        window = self._force_window
        if window.over_limit(now, region.max_force_n, self.limits.force_debounce_s):
            return (
                f"{window.over_s * 1000:.0f} ms above {region.name}'s {region.max_force_n:g} N "
                f"in the last {FORCE_WINDOW_S:g} s (mean {window.mean_n:.0f} N): ease off, "
                "then select"
            )
        return None

    # -- intents, applied at the start of a tick ----------------------------------------------
    def _apply_intents(self) -> None:
        intents = self._intents
        while intents:
            intent = intents.popleft()
            if isinstance(intent, Select):
                log.info("%s: select %s", intent.source, intent.region)
                self._select(intent.region)
            elif isinstance(intent, Step):
                allowed = [n for n, r in self.limits.regions.items() if r.allowed]
                current = self._region.name if self._region is not None else None
                target = R.step(allowed, current, intent.step)
                log.info("%s: select %s", intent.source, target)
                self._select(target)
            elif isinstance(intent, Reset):
                log.info("%s: reset", intent.source)
                self._reset()
            elif isinstance(intent, LongPress):
                if self._trip is not None:
                    log.info("%s: long press: reset", intent.source)
                    self._reset()
                else:
                    log.info("%s: long press: confirm", intent.source)
                    self._emit(events.CONFIRM, source=intent.source)
            elif isinstance(intent, Configure):
                self._pending_config = intent  # a newer config replaces a waiting one
        pending = self._pending_config
        if pending is not None and not (pending.when_idle and self._region is not None):
            self._pending_config = None
            self._configure(pending.limits, pending.tag)

    @property
    def config_waiting(self) -> bool:
        """A looser config is waiting for the region to be disarmed."""
        return self._pending_config is not None

    # -- sensors ----------------------------------------------------------------------------
    def on_tach_edge(self, t: float, active: bool) -> None:
        """A tachometer edge at pin time ``t``: judge rate limits now, not at the next tick."""
        if not active:
            return
        self._enter()
        try:
            self._judge_edge(t)
        finally:
            self._exit()

    def _judge_edge(self, t: float) -> None:
        meter = self._meter
        assert meter is not None
        previous = meter.last_edge
        rate = meter.edge(t, True)
        lim = self.limits
        if previous is not None and t - previous < lim.min_pulse_interval_s:
            self.trip(
                TripReason.TACH_IMPLAUSIBLE,
                f"pulse interval {(t - previous) * 1000:.3f} ms is shorter than any motor "
                f"makes ({lim.min_pulse_interval_s * 1000:.3f} ms): noise on the tach line",
            )
            return
        # Whole percussions: one far beyond any motor, or OVERSPEED_CONFIRM in a row (end to
        # end, whatever came before) over the limit; and the mean over the last 0.25 s.
        slowest = meter.slowest_ppm
        mean = meter.mean_ppm
        hw = lim.hardware_max_ppm
        if rate > hw * IMPLAUSIBLE_RATE_FACTOR:
            self.trip(
                TripReason.TACH_IMPLAUSIBLE,
                f"one percussion at {rate:.0f} ppm: more than {IMPLAUSIBLE_RATE_FACTOR:g}x "
                f"hardware_max_ppm {hw:g}, which no motor makes",
            )
        elif slowest > hw:
            self.trip(
                TripReason.TACH_IMPLAUSIBLE,
                f"measured {rate:.0f} ppm above hardware_max_ppm {hw:g} "
                f"({OVERSPEED_CONFIRM} percussions in a row)",
            )
        if mean is not None and mean > hw:
            self.trip(
                TripReason.TACH_IMPLAUSIBLE,
                f"mean {mean:.0f} ppm over the last {RATE_WINDOW_S:g} s above hardware_max_ppm "
                f"{hw:g}",
            )
        region = self._region
        if region is not None:
            if slowest > region.trip_ppm:
                self.trip(
                    TripReason.OVERSPEED,
                    f"measured {rate:.0f} ppm > {region.name} cap {region.cap_ppm:g} ppm "
                    f"(+tolerance: {region.trip_ppm:.0f})",
                )
            if mean is not None and mean > region.trip_ppm:
                self.trip(
                    TripReason.OVERSPEED,
                    f"mean {mean:.0f} ppm over the last {RATE_WINDOW_S:g} s > {region.name} cap "
                    f"{region.cap_ppm:g} ppm (+tolerance: {region.trip_ppm:.0f})",
                )
        if not self._power_on and t - self._power_off_since > POWER_SWITCH_CHECK_S:
            self.trip(
                TripReason.POWER_SWITCH_FAULT,
                f"tach still pulsing ({rate:.0f} ppm) {t - self._power_off_since:.2f} s "
                "after power was cut: switch welded or shorted",
            )

    # -- the control loop body ----------------------------------------------------------------
    def tick(self) -> None:
        """One control-loop iteration. Any exception here trips and leaves power off."""
        now = self._clock.monotonic()
        self._lock.acquire()  # (:meth:`_enter`, inlined: this runs a thousand times a second)
        self._depth += 1
        try:
            self._tick(now)
        except Exception as exc:
            self._switch.off()
            log.exception("exception in the control loop")
            self.trip(TripReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        finally:
            self._exit()

    def _tick(self, now: float) -> None:
        if self._intents or self._pending_config is not None:
            self._apply_intents()
        lim = self.limits
        gap = now - self._last_tick
        self._last_tick = now
        if gap > lim.max_loop_gap_s:
            self.trip(
                TripReason.LOOP_OVERRUN,
                f"no tick for {gap * 1000:.1f} ms (max_loop_gap_ms {lim.max_loop_gap_s * 1000:g})",
            )

        assert self._meter is not None
        rate = self._meter.rate_at(now)
        self.rate_ppm = rate
        percussing = rate > 0.0

        force_sensor = self._force
        raw = force_sensor.read_raw()
        force = force_sensor.newtons(raw)
        self.force_n = force
        fault = force_fault(raw, force, lim)
        if fault is not None:
            self.trip(TripReason.FORCE_SENSOR_FAULT, fault)
        contact = self._contact.update(now, force)
        if raw != self._last_raw or not (percussing and contact):
            self._last_raw = raw
            self._raw_since = now
        elif now - self._raw_since > lim.force_frozen_s:
            self.trip(
                TripReason.FORCE_SENSOR_FAULT,
                f"raw {raw:.4f} unchanged for {now - self._raw_since:.2f} s while percussing "
                "in contact: reading frozen",
            )

        region = self._region
        window = self._force_window
        # Every tick, armed or not: a re-arm is judged on the last second as it was.
        window.add(now, gap, force, region.max_force_n if region is not None else window.limit)
        if region is not None:
            if window.over_debounce(lim.force_debounce_s):
                self.trip(
                    TripReason.OVERFORCE,
                    f"{force:.1f} N; above {region.name}'s {region.max_force_n:g} N for "
                    f"{window.over_s * 1000:.0f} ms within the last {FORCE_WINDOW_S:g} s "
                    f"(force_debounce_ms {lim.force_debounce_s * 1000:g})",
                )
            elif window.mean_n > region.max_force_n:
                self.trip(
                    TripReason.OVERFORCE,
                    f"mean {window.mean_n:.1f} N over the last {FORCE_WINDOW_S:g} s above "
                    f"{region.name}'s {region.max_force_n:g} N",
                )
            dose = self._dose
            if dose is not None and percussing:
                if rate != self._bucket_rate:  # (it changes at tach edges, not every tick)
                    self._bucket, self._bucket_rate = bucket_of(rate), rate
                bucket = self._bucket
                contact_s = gap if contact else 0.0
                level = dose.add(bucket, contact_s, gap)
                self.book.add(region.name, bucket, contact_s, gap, self._clock.wall())
                if level >= DOSE_FULL:
                    self.trip(
                        TripReason.REGION_DOSE,
                        f"{region.name} dose {level:.3f} after {dose.contact_seconds:.1f} s "
                        f"of contact ({_bands_text(dose)})",
                    )
                elif dose.backstop >= DOSE_FULL:
                    self.trip(
                        TripReason.REGION_DOSE,
                        f"{region.name}: {dose.percussion_seconds:.1f} s of powered percussion, "
                        f"{BACKSTOP_FACTOR:g}x its allowance, but contact could not be "
                        f"confirmed for most of it ({dose.contact_seconds:.1f} s counted): "
                        "check the force sensor's calibration (gunguard calibrate)",
                    )
                elif level >= DOSE_WARNING and not dose.warned:
                    dose.warned = True
                    self._warn(
                        WarningReason.DOSE_NEAR_LIMIT,
                        region.name,
                        f"{region.name} dose {level:.2f}, "
                        f"{dose.seconds_left():.0f} s left at <= {region.bands[0].up_to_ppm:g} ppm",
                        dose=round(level, 4),
                    )

        elif self._coasting is not None:
            # Disarmed, but the motor runs on: what it still delivers counts (a person
            # toggling the region off and on must not get the coast-down for free).
            coasting = self._coasting
            if percussing:
                if rate != self._bucket_rate:
                    self._bucket, self._bucket_rate = bucket_of(rate), rate
                bucket = self._bucket
                contact_s = gap if contact else 0.0
                coasting.add(bucket, contact_s, gap)
                self.book.add(coasting.limits.name, bucket, contact_s, gap, self._clock.wall())
            else:
                self._coasting = None

        stall_covered = False
        for check in self._tick_checks:
            verdict = check(now)
            if verdict is None:
                continue
            stall_covered = stall_covered or verdict.covers_stall
            if verdict.trip is not None:
                self.trip(*verdict.trip)

        if self._power_on and contact and not percussing and not stall_covered:
            if self._stall_since is None:
                self._stall_since = now
            elif now - self._stall_since >= lim.no_tach_contact_s:
                self.trip(
                    TripReason.TACH_STALL,
                    f"{force:.1f} N contact with power on and no tach pulse for "
                    f"{now - self._stall_since:.1f} s: motor stalled or tachometer lost",
                )
        else:
            self._stall_since = None

        self._apply_power(now)
        if self._power_on:
            self._switch.refresh(now)

    # -- life cycle and views ------------------------------------------------------------------
    def close(self) -> None:
        """Power off for good (exit path). Idempotent."""
        self._switch.off()
        with self._changing():
            self._running = False
            self._apply_power(self._clock.monotonic())

    @property
    def region(self) -> str | None:
        region = self._region
        return region.name if region is not None else None

    @property
    def counting(self) -> str | None:
        """The region whose dose percussion is counted against: the armed one, else the
        one just disarmed while its motor coasts down."""
        region = self._region
        if region is not None:
            return region.name
        coasting = self._coasting
        return coasting.limits.name if coasting is not None else None

    def loop_starting(self) -> None:
        """The loop is about to tick for the first time: the gap clock starts now.

        Start-up work between construction and the first tick (opening ports, freezing
        the heap) is not a stalled loop; power is off and no region is armed meanwhile.
        """
        with self._lock:
            self._last_tick = self._clock.monotonic()

    @property
    def last_tick(self) -> float:
        return self._last_tick

    def idle(self) -> bool:
        """Nothing for a tick to judge until something from outside changes.

        True only while: no region is armed and power is off; no intent or config is
        waiting; the last tick measured no percussion (no coast-down being counted) and
        no stall was being timed; the head is not in contact, the force reading is
        plausible and the contact state settled for it (no release being timed); and
        every tick check is ``idle_safe``. Then a tick
        can only repeat itself: the dose, force, stall and frozen-reading rules all need
        an armed region, percussion or power. Virtual time skips ticks only while this
        holds (:meth:`ticks_skipped`); the daemon never skips one.
        """
        with self._lock:
            if (
                self._region is not None
                or self._power_on
                or self._intents
                or self._pending_config is not None
                or self._busy_checks
                or self.rate_ppm > 0.0
                or self._coasting is not None
                or self._stall_since is not None
                or self._contact.active  # a press is exposure the force window must see
            ):
                return False
            raw = self._force.read_raw()
            force = self._force.newtons(raw)
            return force_fault(raw, force, self.limits) is None and self._contact.settled(force)

    def ticks_skipped(self) -> None:
        """Virtual time skipped ticks while :meth:`idle`: the gap clock restarts now.

        A skipped stretch is not a stalled loop: nothing could have happened in it. It
        is refused (``RuntimeError``) unless the supervisor is idle now, so a skip can
        never hide a gap while something was armed or moving.
        """
        with self._lock:
            if not self.idle():
                raise RuntimeError("ticks may be skipped only while the supervisor is idle")
            self._last_tick = self._clock.monotonic()

    def doses(self) -> dict[str, RegionDose]:
        with self._lock:
            return dict(self._doses)

    def snapshot(self) -> Snapshot:
        with self._lock:
            region = self._region
            trip = self._trip
            state = "tripped" if trip else ("armed" if region else "idle")
            return Snapshot(
                t=self._clock.monotonic(),
                state=state,
                region=region.name if region else None,
                power_on=self._power_on,
                rate_ppm=self.rate_ppm,
                force_n=self.force_n,
                cap_ppm=region.cap_ppm if region else None,
                max_force_n=region.max_force_n if region else None,
                trip_reason=trip.reason if trip else None,
                trip_detail=trip.detail if trip else None,
                doses={name: d.summary() for name, d in self._doses.items()},
            )


def _carry_dose(limits: RegionLimits, old: RegionDose) -> RegionDose:
    """The same counted time judged against new limits (never looser than the old ones);
    the warning is not repeated."""
    dose = RegionDose(limits, old.counted())
    dose.warned = old.warned
    return dose


def _refusal_fields(refusal: Refusal) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "reason": refusal.reason,
        "region": refusal.region,
        "detail": refusal.detail,
    }
    if refusal.until is not None:
        fields["until"] = dt.datetime.fromtimestamp(refusal.until, dt.UTC).isoformat()
    return fields


def _bands_text(dose: RegionDose) -> str:
    """Where the counted contact is, by the guidance's bands (<= 2400 ppm, above)."""
    contact = {i: s for i, s in enumerate(dose.contact) if s}
    low, high = band_seconds(contact, [top for top, _ in BUILT_IN_BANDS])
    return f"{low:.1f} s <= {LOW_HIGH_BOUNDARY_PPM:g} ppm, {high:.1f} s above"
