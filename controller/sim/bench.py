"""The virtual-time bench: the real supervisor on mock pins, a simulated gun, a virtual clock.

``simulate``, the test suite and users' own tests (through the ``gunguard_bench``
pytest fixture) all drive this one class. Nothing here decides power: the bench only
moves time, plays the operator and the gun, and records the events the supervisor
emits.

>>> from gunguard.config.schema import GunguardConfig
>>> bench = Bench(GunguardConfig())
>>> bench.select("calf-left") is None
True
>>> bench.gun(ppm=2200, force_n=30)
>>> bench.run(10.0)
>>> bench.power_on, round(bench.supervisor.doses()["calf-left"].contact_seconds)
(True, 10)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from gunguard.assembly.build import Assembly, SensorTap, assemble
from gunguard.config.schema import GunguardConfig
from gunguard.core import events
from gunguard.core.admission import Refusal
from gunguard.core.book import MemoryBook, TreatmentBook
from gunguard.core.clock import VirtualClock
from gunguard.core.dose import RegionDose
from gunguard.core.events import Event, EventBus
from gunguard.link.serial_link import LinkEndpoint
from gunguard.plan.files import LoadedPlan
from gunguard.plan.progression import PlanStatus, plan_status
from gunguard.plan.runner import SessionRunner, SessionView
from gunguard.sim.actions import check_faults
from gunguard.sim.firmware import SimFirmwareEndpoint, apply_firmware_step
from gunguard.sim.gun import simulated_rig
from gunguard.store.plans import PainRecord, PlanBook

#: How often the simulated UART carries bytes (a real one at 115200 baud: continuously).
LINK_PUMP_S = 0.002

#: Idle stretches shorter than this many ticks are ticked through (not worth a jump).
MIN_SKIP_TICKS = 10
#: After a tick that was not idle, look again only this much later (an idle check
#: costs about a tick; skipping later is never wrong, only slower).
IDLE_CHECK_S = 0.01
NOT_IDLE = -1

#: 2026-11-20T08:00:00Z: the calendar start of a bench unless told otherwise.
DEFAULT_START_WALL = 1_795_161_600.0


class Bench:
    """The daemon in virtual time, stepped by the caller.

    It implements :class:`gunguard.sim.actions.Actions`, as the live daemon's
    operator does, so scenarios play the same way in both.
    """

    def __init__(
        self,
        cfg: GunguardConfig,
        *,
        seed: int = 0,
        start_wall: float = DEFAULT_START_WALL,
        book: TreatmentBook | None = None,
        book_factory: Callable[[VirtualClock], TreatmentBook] | None = None,
        tap: SensorTap | None = None,
        clock: VirtualClock | None = None,
        skip_idle: bool = True,
        plan: LoadedPlan | None = None,
        config_name: str = "the bench's config",
    ) -> None:
        """``tap`` sees the sensors on their way in, as in ``gunguard run --record``;
        ``clock`` is the bench's time (a new one at 0 from ``start_wall`` if None);
        ``skip_idle``: skip the ticks of idle stretches (:meth:`run_until`); ``plan``:
        adopted at the start, for guided sessions (:meth:`session`, :meth:`pain`)."""
        self.cfg = cfg
        self.skip_idle = skip_idle
        #: Ticks skipped while idle, and the stretches they made (for tests, benchmarks).
        self.skipped_ticks = 0
        self.skips = 0
        self._tap = tap
        self.seed = seed
        self.clock = clock if clock is not None else VirtualClock(0.0, start_wall)
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self._book_factory = book_factory
        self._shared_book = book
        self._boots = 0
        self._stall_until = -math.inf
        self._earlier_doses: dict[str, RegionDose] = {}  # from before restarts
        self.firmware: SimFirmwareEndpoint | None = None
        self.link: LinkEndpoint | None = None
        self.reported_ppm_override: float | None = None
        self._config_name = config_name
        self._plan_book = PlanBook()  # the plan records, when the history is in memory
        if cfg.serial is not None:
            self.firmware = SimFirmwareEndpoint(seed=seed)
        self._boot()
        if plan is not None:
            self.runner.adopt(plan)

    # -- life cycle -----------------------------------------------------------------
    def _boot(self) -> None:
        self._boots += 1
        clock = self.clock
        rig, self.sim = simulated_rig(
            self.cfg.hardware, clock, seed=self.seed * 1000 + self._boots, at=clock.advance_to
        )
        if self._book_factory is not None:
            self.book: TreatmentBook = self._book_factory(clock)
        else:
            self.book = self._shared_book or MemoryBook()
            self._shared_book = self.book
        self._pump_book = getattr(self.book, "pump", None)
        serial = self.cfg.serial
        self.link = None
        if serial is not None:
            self.link = LinkEndpoint(
                heartbeat_ms=serial.heartbeat_ms, heartbeat_timeout_ms=serial.heartbeat_timeout_ms
            )
            if self.firmware is not None and self.firmware.link_mode != "unplugged":
                self.link.connection_made(clock.monotonic())
        self.assembly: Assembly = assemble(
            self.cfg,
            clock,
            rig,
            book=self.book,
            link=self.link,
            bus=self.bus,
            tap=self._tap,
            plans=self._plan_book,
            config_name=self._config_name,
        )
        self.rig = rig
        self.supervisor = self.assembly.supervisor
        self.guard = self.assembly.guard
        assert self.assembly.runner is not None
        self.runner: SessionRunner = self.assembly.runner
        self._next_pump = clock.monotonic()
        self._tick_s = 1.0 / self.cfg.loop.rate_hz
        self._tick_origin = clock.monotonic()
        self._tick_index = 1

    def restart(self) -> None:
        """The daemon restarts in place: a new supervisor, pins and all, on the same store.

        The person still holds the gun: its set rate, force, timelines and faults carry
        over.
        """
        old = self.sim
        self._earlier_doses.update(self.supervisor.doses())
        self.assembly.close()
        close = getattr(self.book, "close", None)
        if self._book_factory is not None and close is not None:
            close()
        self.emit(events.RESTART)
        self._boot()
        self.sim.take_over(old)

    def reboot(self) -> None:
        """The Pi was off and boots again: a restart on a new boot (and so a monotonic
        clock the store cannot compare with), as when days pass between treatments."""
        self.clock.reboot()
        self.emit(events.REBOOT)
        self.restart()

    def close(self) -> None:
        """Power off and release the pins (idempotent)."""
        self.assembly.close()

    # -- time ---------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def run_until(self, t: float) -> None:
        """Advance virtual time to ``t``, ticking the loop at its rate on the way.

        Stretches where nothing can happen are skipped instead of ticked through
        (``skip_idle``, on by default): while the supervisor is idle
        (:meth:`Supervisor.idle`: no region armed, power off, no intent waiting, no
        percussion, a settled plausible force, only idle-safe tick checks), the gun is
        quiet (:meth:`SimulatedGun.quiet`: no edge scheduled, motor at rest, no
        timeline, no fault), there is no firmware link (it needs traffic) and no loop
        stall is being played. The jump lands on the tick grid, never past ``t`` nor
        past the ledger's next deadline (:meth:`Ledger.next_due`: its idle sample, a
        commit, a pruning), where the ledger is pumped as its writer would have been;
        the supervisor's gap clock restarts there (:meth:`Supervisor.ticks_skipped`),
        and the tick schedule resumes one period later. What happens is the same as
        ticking through: only the ticks that could change nothing are left out.
        """
        clock = self.clock
        sim = self.sim
        tick = self.supervisor.tick
        period = self._tick_s
        origin = self._tick_origin
        index = self._tick_index
        stall_until = self._stall_until
        pump_book = self._pump_book
        supervisor = self.supervisor
        linked = self.link is not None
        skip = self.skip_idle and not linked
        next_check = -math.inf
        while True:
            next_tick = origin + index * period
            if next_tick > t:
                break
            if skip and next_tick >= next_check and next_tick >= stall_until:
                if supervisor.power_on:  # armed: not idle for a while (look again later)
                    next_check = next_tick + IDLE_CHECK_S
                else:
                    resumed = self._skip_idle(t, origin, index, period)
                    if resumed > index:
                        index = resumed
                        continue
                    if resumed == NOT_IDLE:
                        next_check = next_tick + IDLE_CHECK_S
            index += 1
            sim.advance(next_tick)
            clock.advance_to(next_tick)
            if linked and next_tick >= self._next_pump:
                self._pump(next_tick)
            if next_tick >= stall_until:
                tick()
                if pump_book is not None:
                    pump_book()
        self._tick_index = index
        sim.advance(t)
        clock.advance_to(t)

    def _skip_idle(self, t: float, origin: float, index: int, period: float) -> int:
        """Skip the idle ticks from ``index`` on (see :meth:`run_until`): the index of the
        next tick to run; ``index`` itself when idle but the stretch is too short to
        skip; :data:`NOT_IDLE` when something may happen."""
        if not (self.sim.quiet() and self.supervisor.idle()):
            return NOT_IDLE
        until = t
        next_due = getattr(self.book, "next_due", None)
        if next_due is not None:
            until = min(until, next_due())
        last = math.floor((until - origin) / period)  # the last tick at or before it
        while origin + (last + 1) * period <= until:
            last += 1
        while last >= index and origin + last * period > until:
            last -= 1
        if last - index < MIN_SKIP_TICKS:
            return index
        at = origin + last * period
        self.sim.advance(at)
        self.clock.advance_to(at)
        self.supervisor.ticks_skipped()
        if self._pump_book is not None:
            self._pump_book()
        self.skipped_ticks += last - index + 1
        self.skips += 1
        return last + 1

    def _pump(self, now: float) -> None:
        """Carry bytes both ways over the simulated UART, and couple gun and firmware."""
        self._next_pump = now + LINK_PUMP_S
        fw, link, gun = self.firmware, self.link, self.sim
        assert fw is not None and link is not None
        gun.firmware_motor_on = fw.motor_on
        gun.firmware_cap_ppm = fw.cap_ppm
        override = self.reported_ppm_override
        fw.reported_ppm = round(gun.rate_ppm if override is None else override)
        fw.feed(link.outgoing(now), now)
        link.feed(fw.outgoing(now), now)

    def firmware_step(self, link: Any, firmware: Any) -> None:
        """Scenario ``link:`` / ``firmware:`` steps (needs a ``serial:`` config section)."""
        fw, pi = self.firmware, self.link
        if fw is None or pi is None:
            raise ValueError("link/firmware steps need a serial: section in the config")
        now = self.now
        if link is not None:
            was_unplugged = fw.link_mode == "unplugged"
            fw.link_mode = link.state
            if link.state == "unplugged" and not was_unplugged:
                pi.connection_lost(now)
            elif was_unplugged and link.state != "unplugged":
                pi.connection_made(now)
        if firmware is not None:
            apply_firmware_step(fw, firmware, self._set_reported_ppm)

    def _set_reported_ppm(self, ppm: float | None) -> None:
        self.reported_ppm_override = ppm

    def run(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def stall_loop(self, milliseconds: float) -> None:
        """The loop stops ticking for a while (a frozen process); the gun carries on."""
        self._stall_until = self.now + milliseconds / 1000.0

    def step_wall(self, seconds: float) -> None:
        """The calendar clock steps (NTP sync, a boot without saved time)."""
        self.clock.step_wall(seconds)
        self.emit(events.WALL_CLOCK, step_s=seconds, wall=self.clock.wall())

    # -- the operator ---------------------------------------------------------------------
    def select(self, region: str | None) -> Refusal | None:
        return self.supervisor.select_region(region)

    def reset(self) -> list[str]:
        return self.supervisor.reset()

    # -- the treatment plan ----------------------------------------------------------------
    def session(self, action: str) -> SessionView | None:
        """``start``, ``next`` or ``stop`` a guided session, as ``gunguard session`` does:
        the region is asked for with an intent, armed (or refused) at the next tick.
        Raises :class:`~gunguard.plan.runner.SessionRefused` when it cannot be done."""
        runner = self.runner
        if action == "start":
            return runner.start("bench")
        if action == "next":
            return runner.next("bench")
        if action == "stop":
            runner.stop("bench")
            return None
        raise ValueError(f"session {action!r}: one of start, next, stop")

    def pain(self, value: int, when: str | None = None) -> PainRecord:
        """Record a pain score (0-10; ``when``: before, after or morning)."""
        return self.runner.pain(value, when, "bench")

    def plan_status(self) -> PlanStatus:
        """``gunguard plan status`` now, from the runner's records."""
        runner = self.runner
        if runner.loaded is None or runner.record is None:
            raise ValueError("no plan adopted")
        return plan_status(
            runner.loaded.plan, runner.record, runner.book.history(), self.clock.wall()
        )

    # -- the gun ------------------------------------------------------------------------
    def gun(self, ppm: float | None = None, force_n: float | None = None) -> None:
        """The person sets the speed and presses (back to the rate and force models)."""
        self.sim.set(ppm=ppm, force_n=force_n)

    def tach_periods(
        self, periods_ms: Sequence[float], *, repeat: bool = True, per: str = "pulse"
    ) -> None:
        """The tach pulses at these periods (ms) from now, instead of the motor's rate.

        ``per="pulse"``: tach pulse to tach pulse; ``per="percussion"``: one
        percussion each, split into ``pulses_per_percussion`` pulses. Pulses need the
        motor's power, as the rate model's do (see :meth:`SimulatedGun.tach_periods`).
        """
        self.sim.tach_periods(periods_ms, repeat=repeat, per=per)

    def force_samples(
        self, samples_n: Sequence[float], sample_ms: float, *, repeat: bool = True
    ) -> None:
        """The press from now: each force (N) for ``sample_ms``, exact (no noise)."""
        self.sim.force_samples(samples_n, sample_ms, repeat=repeat)

    def force_pattern(
        self,
        high_n: float,
        low_n: float,
        period_ms: float,
        *,
        duty: float | None = None,
        high_ms: float | None = None,
    ) -> None:
        """The press from now: ``high_n`` for ``duty`` of every period (or ``high_ms``),
        ``low_n`` the rest, high first."""
        self.sim.force_pattern(high_n, low_n, period_ms, duty=duty, high_ms=high_ms)

    def fault(
        self,
        *,
        force: str | None = None,
        tach: str | None = None,
        power_switch: str | None = None,
        loop_stall_ms: float | None = None,
    ) -> None:
        check_faults(force=force, tach=tach, power_switch=power_switch)
        self.sim.inject(force=force, tach=tach, power_switch=power_switch, now=self.now)
        if loop_stall_ms is not None:
            self.stall_loop(loop_stall_ms)

    # -- what happened ----------------------------------------------------------------------
    def announce(self, kind: str, **fields: Any) -> None:
        """An event stamped with the supervisor's state, as a plug-in's is."""
        self.supervisor.announce(kind, **fields)

    def emit(self, kind: str, **fields: Any) -> None:
        self.bus.emit(Event(self.now, kind, fields))

    @property
    def power_on(self) -> bool:
        return self.supervisor.power_on

    def trips(self) -> list[str]:
        return [e.fields["reason"] for e in self.events if e.kind == events.TRIP]

    def first(self, kind: str, **match: Any) -> Event | None:
        """The first event of ``kind`` whose fields include ``match``."""
        for event in self.events:
            if event.kind == kind and all(event.fields.get(k) == v for k, v in match.items()):
                return event
        return None

    def summary(self) -> dict[str, Any]:
        """Per region, its latest treatment state (across restarts), and every trip."""
        doses = {**self._earlier_doses, **self.supervisor.doses()}
        return {
            "regions": {name: d.summary() for name, d in doses.items()},
            "trips": self.trips(),
        }
