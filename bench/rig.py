"""The supervisor in real time on mock pins, instrumented for timing.

Built like :func:`gunguard.assembly.rig.build_rig` builds the daemon's hardware (motor switch
first, then the tachometer, then the force sensor), on a
:class:`~gunguard.hardware.pins.ClockedMockFactory` with the real clock, with two differences
that only add measurement:

* every pin is a :class:`TimedPin`, which notes ``perf_counter_ns()`` at the moment its
  level changes (the tach edge, the motor pin being written);
* the ADC is a :class:`FastAdc`, a settable value that notes when each thread last
  sampled it. gpiozero's MCP3008 over mock SPI costs ~130 us a read (field notes), far
  from what a hardware SPI read costs, so it would only measure the mock.

The edges of a percussing gun come from :class:`Percussion`, a thread that sleeps until
each edge is due and drives the tach pin, like lgpio's callback thread delivering one
edge at a time (the daemon's ``SimGunDriver`` instead polls at 2 kHz, a cost the real
daemon on a Pi does not have).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gunguard.assembly.build import assemble
from gunguard.assembly.rig import build_rig
from gunguard.config.schema import GunguardConfig
from gunguard.core.book import TreatmentBook
from gunguard.core.clock import RealClock
from gunguard.core.loop import RealtimeLoop
from gunguard.hardware.pins import ClockedMockFactory, ClockedMockPin
from gunguard.service.dispatcher import EventDispatcher
from gunguard.service.watchdog import LoopWatchdog


class TimedPin(ClockedMockPin):
    """A mock pin that remembers when (``perf_counter_ns``) its level changed.

    ``changes`` holds ``(ns, level, probe)``: ``probe()`` runs right after the change, in
    the thread that made it (the overforce benchmark asks the ADC when that thread last
    sampled it).
    """

    def __init__(self, factory: Any, info: Any) -> None:
        self.changes: deque[tuple[int, bool, Any]] = deque(maxlen=256)
        self.probe: Callable[[], Any] | None = None
        super().__init__(factory, info)

    def _change_state(self, value: bool) -> bool:
        ns = time.perf_counter_ns()
        changed = super()._change_state(value)
        if changed:
            probe = self.probe
            self.changes.append((ns, value, probe() if probe is not None else None))
        return changed


class FastAdc:
    """An ADC at the boundary: ``raw`` (0..1), optionally wobbling by one LSB per read.

    ``last_read_ns[thread_id]`` is when that thread last sampled it, so the motor pin's
    change can be traced back to the sample of the tick that cut power.
    """

    LSB = 1.0 / 1023.0

    def __init__(self, raw: float, wobble: bool = False) -> None:
        self.raw = raw
        self.wobble = wobble
        self._flip = False
        self.last_read_ns: dict[int, int] = {}

    @property
    def value(self) -> float:
        self.last_read_ns[threading.get_ident()] = time.perf_counter_ns()
        if self.wobble:
            self._flip = not self._flip
            return self.raw + (self.LSB if self._flip else 0.0)
        return self.raw


def raw_for(cfg: GunguardConfig, newtons: float) -> float:
    fs = cfg.hardware.force_sensor
    return fs.zero + newtons / fs.newtons_per_unit


class RealtimeRig:
    """Supervisor + drivers on timed mock pins, real clock, optional loop and watchdog."""

    def __init__(
        self,
        cfg: GunguardConfig,
        *,
        force_n: float = 0.0,
        wobble: bool = False,
        book: TreatmentBook | None = None,
    ) -> None:
        hw = cfg.hardware
        self.cfg = cfg
        self.clock = RealClock()
        self.factory = ClockedMockFactory(self.clock, pin_class=TimedPin)
        self.adc = FastAdc(raw_for(cfg, force_n), wobble=wobble)
        rig = build_rig(hw, self.factory, adc=self.adc)
        self.switch, self.tach, self.force = rig.switch, rig.tachometer, rig.force
        self.assembly = assemble(cfg, self.clock, rig, book=book)
        self.supervisor = self.assembly.supervisor
        # As in the daemon: listeners run on the dispatcher thread, not the loop's.
        self.dispatcher = EventDispatcher(self.assembly.bus)
        self.dispatcher.start()
        self.motor_pin: TimedPin = self.switch.pin  # type: ignore[assignment]
        self.tach_pin: TimedPin = self.tach.pin  # type: ignore[assignment]
        # Active = low with a pull-up (open-collector sensor), high otherwise.
        self._active_low = hw.tachometer.pull_up
        self.loop = RealtimeLoop(self.supervisor, self.clock, cfg.loop.rate_hz)
        self.watchdog = LoopWatchdog(self.supervisor, self.clock, cfg.loop.max_loop_gap_ms / 1000.0)
        self.stop = threading.Event()
        self._loop_thread: threading.Thread | None = None

    # -- the tach line ---------------------------------------------------------------------
    def edge(self) -> int:
        """Drive the tach line to its active level; returns the edge's ns timestamp."""
        if self._active_low:
            self.tach_pin.drive_low()
        else:
            self.tach_pin.drive_high()
        return self.tach_pin.changes[-1][0]

    def release(self) -> None:
        """The tach line back to its idle level (the inactive edge)."""
        if self._active_low:
            self.tach_pin.drive_high()
        else:
            self.tach_pin.drive_low()

    def cut_after(self, ns: int) -> tuple[int, Any] | None:
        """``(ns, probe)`` of the motor pin going to its off level at or after ``ns``."""
        off_level = not self.cfg.hardware.motor_power.active_high
        for when, level, probed in tuple(self.motor_pin.changes):
            if when >= ns and level == off_level:
                return when, probed
        return None

    # -- the control loop ---------------------------------------------------------------------
    def start_loop(self) -> None:
        """The loop (and its watchdog) in a background thread, as in the daemon."""
        self.watchdog.start()
        self._loop_thread = threading.Thread(
            target=self.loop.run, args=(self.stop,), name="gunguard-loop", daemon=True
        )
        self._loop_thread.start()

    def close(self) -> None:
        self.stop.set()
        if self._loop_thread is not None:
            self._loop_thread.join(5.0)
        self.watchdog.stop()
        self.supervisor.close()
        self.dispatcher.stop()
        self.assembly.close()
        self.factory.close()


class Percussion(threading.Thread):
    """A gun percussing at ``ppm`` while its power is on (no spin-down: it stops at once).

    One active edge per pulse, released half a pulse later.
    """

    def __init__(self, rig: RealtimeRig, ppm: float, stop: threading.Event) -> None:
        super().__init__(name="bench-percussion", daemon=True)
        ppp = rig.cfg.hardware.tachometer.pulses_per_percussion
        self._rig = rig
        self._period_ns = round(60e9 / (ppm * ppp))
        self._stop_event = stop
        self.edges = 0

    def run(self) -> None:
        period = self._period_ns
        half = period // 2
        due = time.perf_counter_ns()
        switch = self._rig.switch
        while not self._stop_event.is_set():
            if switch.energised:  # a motor without power stops percussing
                self._rig.edge()
                self.edges += 1
                _sleep_to(due + half)
                self._rig.release()
            due += period
            now = time.perf_counter_ns()
            if now - due > period:  # fell behind by a whole pulse: start again from now
                due = now
            _sleep_to(due)


def _sleep_to(deadline_ns: int) -> None:
    delay = deadline_ns - time.perf_counter_ns()
    if delay > 0:
        time.sleep(delay / 1e9)
