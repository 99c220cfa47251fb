"""A simulated massage gun on mock pins: motor, tachometer, force, injectable faults.

It reads the motor power pin like the real power stage would (the active level, or a
fed charge pump in ``dynamic`` mode), spins its motor up and down (within 0.4 s),
pulses the tachometer pin at the resulting rate with ±1 % seeded jitter, and presents
the set force to the ADC. The caller moves it through time with :meth:`advance`; in
virtual time ``at`` moves the clock to each edge first, so every edge carries its
exact simulated timestamp through gpiozero's ``when_changed``.

Timelines replace the models with arbitrary sensor input (scenario steps, the bench,
replays of recorded traces): the tach as a sequence of pulse periods
(:meth:`SimulatedGun.tach_periods`) or as recorded edges
(:meth:`SimulatedGun.play_edges`), the force as samples, a duty-cycle pattern or
recorded raw readings. A tach timeline still needs the motor's power: no pulses while
the power stage is off (unless its switch is stuck on), so a cut stops them.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gunguard.assembly.rig import Rig, build_rig
from gunguard.config.schema import ForceSensorConfig, HardwareConfig, MotorPowerConfig
from gunguard.hardware.mock_adc import SimulatedAdc
from gunguard.hardware.pins import Clock, ClockedMockFactory

RAMP_S = 0.4  # spin-up and spin-down time: within the 0.5 s the brief asks for
MIN_RUNNING_PPM = 300.0  # below this the motor has stalled
JITTER = 0.01
REALTIME_LATE_S = 0.001  # real-time driver: this overdue, the schedule shifts to now
GLITCH_EVERY_S = 0.05  # tach "noise" fault: a spurious pulse pair this often
GLITCH_WIDTH_S = 0.0001
FORCE_NOISE_FRACTION = 0.03  # percussion shakes the reading by about 3 %
FORCE_NOISE_MIN_N = 0.5
NOISE_TABLE = 4099  # (a prime: the noise does not line up with any period of the gun)
#: A timeline's sample or phase boundary that falls on a tick belongs to the new value,
#: whatever the float rounding of the tick's time.
BOUNDARY_EPS_S = 1e-9
#: A replay's motor counts as stopped this long after its last recorded pulse.
REPLAY_STOPPED_S = 0.25
#: Longest sequence a timeline takes (a scenario's list, a bench call).
MAX_TIMELINE_ITEMS = 1_000_000


@dataclass
class GunFaults:
    force: str = "none"
    tach: str = "none"
    power_switch: str = "none"


class PulseTimeline:
    """Tach pulses at listed periods: the time from each pulse's active edge to the next's.

    Played once, ``n`` periods make ``n + 1`` pulses (every listed period is measured),
    then the line falls silent; repeated, the list cycles. Each pulse is active for half
    of the period that follows it.
    """

    __slots__ = ("due_gap", "emitted", "finished", "index", "periods", "repeat", "waiting_since")

    def __init__(self, periods_s: Sequence[float], repeat: bool, start: float) -> None:
        self.periods = tuple(periods_s)
        self.repeat = repeat
        self.index = 0  # the period that follows the next pulse
        self.emitted = 0
        self.finished = False
        #: No pulse before this (the step's time, or when the power went away).
        self.waiting_since = start
        #: The gap before the next pulse: as if the pattern had been playing already.
        self.due_gap = self.periods[-1]

    def next_period(self) -> float | None:
        """The period after the pulse being emitted now (None: that was the last pulse)."""
        self.emitted += 1
        if not self.repeat and self.emitted > len(self.periods):
            self.finished = True
            return None
        period = self.periods[self.index]
        self.index = (self.index + 1) % len(self.periods)
        self.due_gap = period
        return period


class ForceSamples:
    """Force held at each listed value for ``sample_s``; once: the last value stays."""

    __slots__ = ("repeat", "sample_s", "samples", "start")

    def __init__(
        self, samples_n: Sequence[float], sample_s: float, repeat: bool, start: float
    ) -> None:
        self.samples = tuple(samples_n)
        self.sample_s = sample_s
        self.repeat = repeat
        self.start = start

    def newtons(self, t: float) -> float:
        i = max(0, math.floor((t - self.start + BOUNDARY_EPS_S) / self.sample_s))
        n = len(self.samples)
        return self.samples[i % n if self.repeat else min(i, n - 1)]


class ForcePattern:
    """``high_n`` for ``high_s`` of every ``period_s``, ``low_n`` the rest; high first."""

    __slots__ = ("high_n", "high_s", "low_n", "period_s", "start")

    def __init__(
        self, high_n: float, low_n: float, period_s: float, high_s: float, start: float
    ) -> None:
        self.high_n = high_n
        self.low_n = low_n
        self.period_s = period_s
        self.high_s = high_s
        self.start = start

    def newtons(self, t: float) -> float:
        phase = math.fmod(max(0.0, t - self.start + BOUNDARY_EPS_S), self.period_s)
        return self.high_n if phase < self.high_s else self.low_n


#: A recorded time is rounded to the microsecond: a sample is seen from half of one
#: before it, so a tick at the very time it was read sees it, whatever the rounding.
RECORDED_RESOLUTION_S = 1e-6


class RawSamples:
    """Recorded raw ADC readings (0..1), each held until the next one (a replay)."""

    __slots__ = ("_raws", "_times")

    def __init__(self, samples: Sequence[tuple[float, float]]) -> None:
        self._times = [t for t, _ in samples]
        self._raws = [raw for _, raw in samples]

    def raw(self, t: float) -> float:
        """The reading at ``t``: the latest sample at or before it (the first before any)."""
        i = bisect.bisect_right(self._times, t + RECORDED_RESOLUTION_S / 2.0) - 1
        return self._raws[max(0, i)]


def check_periods(periods_ms: Sequence[float], what: str = "tach_periods_ms") -> None:
    """Periods are finite, > 0 and at most a minute; a list has at least one."""
    if not periods_ms:
        raise ValueError(f"{what}: give at least one period")
    if len(periods_ms) > MAX_TIMELINE_ITEMS:
        raise ValueError(f"{what}: at most {MAX_TIMELINE_ITEMS} periods")
    for i, p in enumerate(periods_ms):
        if not (isinstance(p, int | float) and math.isfinite(p) and 0.0 < p <= 60_000.0):
            raise ValueError(f"{what}[{i}] = {p!r}: a period is > 0 and <= 60000 ms")


def force_range_n(cfg: ForceSensorConfig) -> tuple[float, float]:
    """The forces the ADC can read with this calibration (raw 0..1)."""
    return (0.0 - cfg.zero) * cfg.newtons_per_unit, (1.0 - cfg.zero) * cfg.newtons_per_unit


def check_force(value: float, cfg: ForceSensorConfig, where: str) -> None:
    """A force is finite and within what the ADC reads with this calibration."""
    low, high = force_range_n(cfg)
    if not (isinstance(value, int | float) and math.isfinite(value)):
        raise ValueError(f"{where} = {value!r}: not a number")
    if not low - 1e-9 <= value <= high + 1e-9:
        raise ValueError(
            f"{where} = {value:g} N: outside what the ADC reads with this calibration "
            f"({low:g}..{high:g} N: zero {cfg.zero:g}, newtons_per_unit {cfg.newtons_per_unit:g})"
        )


class SimulatedGun:
    """The gun the supervisor watches, driven through mock pins."""

    def __init__(
        self,
        *,
        tach_pin: object,
        tach_pull_up: bool,
        pulses_per_percussion: int,
        motor_pin: object,
        motor_cfg: MotorPowerConfig,
        force_cfg: ForceSensorConfig,
        seed: int = 0,
        at: Callable[[float], None] | None = None,
        start: float = 0.0,
        clock: Clock | None = None,
    ) -> None:
        self._tach = tach_pin
        self._tach_idle_high = tach_pull_up
        self._ppp = pulses_per_percussion
        self._motor = motor_pin
        self._motor_active = motor_cfg.active_high
        self._dynamic = motor_cfg.mode == "dynamic"
        self._pump_hold_s = 2.5 / motor_cfg.toggle_hz  # a charge pump drains in ~2 periods
        self._force_cfg = force_cfg
        self._rng = random.Random(seed)
        #: Standard normal draws for the force noise, drawn once from the seed and cycled
        #: (one ADC read a tick: a fresh gauss() each time was a tenth of a bench's time).
        self._normals = [self._rng.gauss(0.0, 1.0) for _ in range(NOISE_TABLE)]
        self._normal_at = 0
        self._at = at or (lambda t: None)
        self._clock = clock
        #: Held while the schedule changes: in real time a scenario thread sets what the
        #: driver thread plays. Never taken by the ADC read (the loop's thread).
        self._lock = threading.RLock()
        self.set_ppm = 0.0
        self.force_n = 0.0
        self.faults = GunFaults()
        self.rate_ppm = 0.0  # the motor's actual rate
        #: What the gun's own firmware allows (with a serial link): motor on, rate cap.
        self.firmware_motor_on = True
        self.firmware_cap_ppm = math.inf
        #: Hardware in the loop: the rate a real firmware measures; the motor turns at
        #: it (while powered and driven) instead of at :attr:`set_ppm`, without a ramp
        #: of its own (the real motor's ramp is in the reports). None: the model.
        self.firmware_ppm: float | None = None
        self._last_update = start
        self._next_pulse = math.inf
        self._release_at = math.inf
        self._next_glitch = math.inf
        self._glitch_release_at = math.inf
        self._last_pulse: float | None = None  # the latest active edge (not glitches)
        #: In real time (no ``at``), edges later than this are skipped, not burst.
        self._late_s: float | None = None if at is not None else REALTIME_LATE_S
        self._frozen_raw: float | None = None
        #: Timelines instead of the models (None: the rate and force models).
        self._timeline: PulseTimeline | None = None
        self._force_timeline: ForceSamples | ForcePattern | None = None
        self._raw_samples: RawSamples | None = None
        self._edges: deque[tuple[float, bool]] = deque()
        self._edge_gate: Callable[[float], bool] | None = None
        self._replaying = False  # recorded edges drive the tach: no rate model
        self._next_edge = math.inf

    def now(self) -> float:
        """The gun's time: its clock's, else the time it was last advanced to."""
        return self._clock.monotonic() if self._clock is not None else self._last_update

    # -- what the scenario changes ------------------------------------------------
    def set(self, ppm: float | None = None, force_n: float | None = None) -> None:
        """Set the motor's speed and the press: back to the rate and force models."""
        with self._lock:
            if ppm is not None:
                self.set_ppm = float(ppm)
                self._timeline = None
            if force_n is not None:
                self.force_n = float(force_n)
                self._force_timeline = None

    def tach_periods(
        self, periods_ms: Sequence[float], *, repeat: bool = True, per: str = "pulse"
    ) -> None:
        """Pulse the tach at these periods instead of the motor's rate model.

        ``per="pulse"``: each period is from one tach pulse to the next.
        ``per="percussion"``: each is one percussion's period, split evenly into
        ``pulses_per_percussion`` pulses. The first pulse comes now, when the motor
        has power (else when it gets it), but never sooner than the last listed period
        after the tach's previous pulse; while the power is off the pattern pauses.
        """
        if per not in ("pulse", "percussion"):
            raise ValueError(f"per: {per!r} is not 'pulse' or 'percussion'")
        key = "tach_periods_ms" if per == "pulse" else "percussion_periods_ms"
        check_periods(periods_ms, key)
        if per == "percussion":
            periods_s = [p / 1000.0 / self._ppp for p in periods_ms for _ in range(self._ppp)]
        else:
            periods_s = [p / 1000.0 for p in periods_ms]
        with self._lock:
            self._timeline = PulseTimeline(periods_s, repeat, self.now())
            self._next_pulse = math.inf  # the rate model's next pulse will not come

    def force_samples(
        self, samples_n: Sequence[float], sample_ms: float, *, repeat: bool = True
    ) -> None:
        """Press with these forces, each for ``sample_ms``, instead of the set force and
        its noise. Played once, the last value stays."""
        if not samples_n:
            raise ValueError("force_samples_n: give at least one sample")
        if len(samples_n) > MAX_TIMELINE_ITEMS:
            raise ValueError(f"force_samples_n: at most {MAX_TIMELINE_ITEMS} samples")
        if not (math.isfinite(sample_ms) and 0.0 < sample_ms <= 60_000.0):
            raise ValueError(f"sample_ms = {sample_ms!r}: a sample lasts > 0 and <= 60000 ms")
        for i, f in enumerate(samples_n):
            check_force(f, self._force_cfg, f"force_samples_n[{i}]")
        with self._lock:
            self._force_timeline = ForceSamples(
                [float(f) for f in samples_n], sample_ms / 1000.0, repeat, self.now()
            )

    def force_pattern(
        self,
        high_n: float,
        low_n: float,
        period_ms: float,
        *,
        duty: float | None = None,
        high_ms: float | None = None,
    ) -> None:
        """Press ``high_n`` for part of every period (``duty`` 0..1, or ``high_ms``) and
        ``low_n`` for the rest, starting high now, instead of the set force."""
        if not (math.isfinite(period_ms) and 0.0 < period_ms <= 60_000.0):
            raise ValueError(f"force_pattern.period_ms = {period_ms!r}: > 0 and <= 60000 ms")
        if (duty is None) == (high_ms is None):
            raise ValueError("force_pattern: give exactly one of duty and high_ms")
        if duty is not None:
            if not (math.isfinite(duty) and 0.0 < duty < 1.0):
                raise ValueError(f"force_pattern.duty = {duty!r}: between 0 and 1 (exclusive)")
            high_s = duty * period_ms / 1000.0
        else:
            assert high_ms is not None
            if not (math.isfinite(high_ms) and 0.0 < high_ms < period_ms):
                raise ValueError(
                    f"force_pattern.high_ms = {high_ms!r}: > 0 and shorter than period_ms"
                )
            high_s = high_ms / 1000.0
        check_force(high_n, self._force_cfg, "force_pattern.high_n")
        check_force(low_n, self._force_cfg, "force_pattern.low_n")
        with self._lock:
            self._force_timeline = ForcePattern(
                float(high_n), float(low_n), period_ms / 1000.0, high_s, self.now()
            )

    def play_edges(
        self, edges: Sequence[tuple[float, bool]], gate: Callable[[float], bool] | None = None
    ) -> None:
        """Drive these recorded ``(time, active)`` edges at their times (a replay).

        ``gate(t)`` says whether an active edge at ``t`` may play (the motor turns):
        a dropped one drops its pulse, releases always play. Virtual time only.
        """
        with self._lock:
            self.set_ppm = 0.0
            self._timeline = None
            self._next_pulse = math.inf
            self._edges = deque(sorted(edges, key=lambda e: e[0]))
            self._edge_gate = gate
            self._replaying = True
            self._next_edge = self._edges[0][0] if self._edges else math.inf

    def play_raw(self, samples: Sequence[tuple[float, float]]) -> None:
        """Present these recorded ``(time, raw)`` ADC readings, each held until the next."""
        with self._lock:
            self._raw_samples = RawSamples(samples) if samples else None

    def take_over(self, old: SimulatedGun) -> None:
        """Carry on what the person does with ``old`` (a daemon restart): speed, press,
        faults and timelines."""
        with self._lock:
            self.set_ppm, self.force_n, self.faults = old.set_ppm, old.force_n, old.faults
            self._force_timeline = old._force_timeline
            self._raw_samples = old._raw_samples
            timeline = old._timeline
            if timeline is not None and not timeline.finished:
                timeline.waiting_since = max(timeline.waiting_since, self._last_update)
            self._timeline = timeline
            self._edges, self._edge_gate = old._edges, old._edge_gate
            self._replaying = old._replaying
            self._next_edge = self._edges[0][0] if self._edges else math.inf

    def inject(
        self,
        *,
        force: str | None = None,
        tach: str | None = None,
        power_switch: str | None = None,
        now: float = 0.0,
    ) -> None:
        with self._lock:
            if force is not None:
                self._frozen_raw = self._raw_now() if force == "frozen" else None
                self.faults.force = force
            if tach is not None:
                self.faults.tach = tach
                self._next_glitch = now + GLITCH_EVERY_S if tach == "noise" else math.inf
            if power_switch is not None:
                self.faults.power_switch = power_switch

    # -- physics ------------------------------------------------------------------
    def powered(self, now: float) -> bool:
        """Does the motor get power? What the power stage would do with the pin."""
        if self.faults.power_switch == "stuck_on":
            return True
        level_active = bool(self._motor.state) == self._motor_active
        if not self._dynamic:
            return level_active
        # A charge pump needs alternating drive: a recent change that follows another.
        states = self._motor.states
        return (
            len(states) > 2
            and now - self._motor.last_change <= self._pump_hold_s
            and states[-1].timestamp <= self._pump_hold_s
        )

    def _running(self, now: float) -> bool:
        return self.firmware_motor_on and self.powered(now)

    def _power_since(self, now: float) -> float:
        """When the power came on (exact for a static pin; ``now`` otherwise)."""
        if self._dynamic or self.faults.power_switch == "stuck_on":
            return now
        return self._motor.last_change

    def _update_rate(self, now: float) -> None:
        dt = now - self._last_update
        self._last_update = now
        if self._replaying:
            # The recorded pulses set the rate; none for a while: the motor has stopped.
            last = self._last_pulse
            if last is None or now - last > REPLAY_STOPPED_S:
                self.rate_ppm = 0.0
            return
        if dt <= 0.0 or self._timeline is not None:
            return  # a timeline sets the rate itself
        running = self.firmware_motor_on and self.powered(now)  # (:meth:`_running`)
        if self.firmware_ppm is not None:  # hardware in the loop: the board's own rate
            rate = self.firmware_ppm if running else 0.0
            self.rate_ppm = rate if rate >= MIN_RUNNING_PPM else 0.0
            return
        target = 0.0
        if running:
            target = self.set_ppm  # (at most the firmware's cap: min() without the call)
            if self.firmware_cap_ppm < target:
                target = self.firmware_cap_ppm
        rate = self.rate_ppm
        if rate < target:
            rate = min(target, rate + max(target, 1000.0) / RAMP_S * dt)
        elif rate > target:
            rate = max(target, rate - max(rate, 1000.0) / RAMP_S * dt)
            if rate < MIN_RUNNING_PPM:
                rate = 0.0  # spinning down: below this the motor has stopped
        self.rate_ppm = rate

    def _pulse_interval(self) -> float:
        base = 60.0 / (self.rate_ppm * self._ppp)
        return base * (1.0 + self._rng.uniform(-JITTER, JITTER))

    def _drive(self, t: float, active: bool) -> None:
        self._at(t)
        if self.faults.tach == "disconnected":
            return
        high = active != self._tach_idle_high
        if high:
            self._tach.drive_high()
        else:
            self._tach.drive_low()

    def _resume_timeline(self, now: float) -> None:
        """Schedule a waiting timeline's next pulse once the motor has power."""
        timeline = self._timeline
        if timeline is None or timeline.finished or not self._running(now):
            return
        start = max(timeline.waiting_since, self._power_since(now), self._last_update)
        if self._last_pulse is not None:
            start = max(start, self._last_pulse + timeline.due_gap)
        if self._release_at != math.inf:
            start = max(start, self._release_at)  # a pulse still active ends first
        self._next_pulse = start

    def _timeline_pulse(self, t: float, timeline: PulseTimeline) -> None:
        if not self._running(t):
            # No power: the pattern pauses and takes up again when power comes back.
            self._next_pulse = math.inf
            timeline.waiting_since = t
            self.rate_ppm = 0.0
            return
        period = timeline.next_period()
        self._drive(t, True)
        self._last_pulse = t
        if period is None:
            self._release_at = t + timeline.periods[-1] / 2.0
            self._next_pulse = math.inf
            self.rate_ppm = 0.0
        else:
            self._release_at = t + period / 2.0
            self._next_pulse = t + period
            self.rate_ppm = 60.0 / (period * self._ppp)

    def _recorded_edge(self, t: float) -> None:
        edges = self._edges
        _, active = edges.popleft()
        self._next_edge = edges[0][0] if edges else math.inf
        if active:
            gate = self._edge_gate
            if gate is not None and not gate(t):
                return
            if self._last_pulse is not None and t > self._last_pulse:
                self.rate_ppm = 60.0 / ((t - self._last_pulse) * self._ppp)
            self._last_pulse = t
        self._drive(t, active)

    def advance(self, now: float) -> None:
        """Emit every tach edge due up to ``now``, in time order.

        Virtual time calls it before every tick: most calls find no edge due and only
        move the motor's rate on.
        """
        lock = self._lock
        lock.acquire()  # (not ``with``: about half the cost, and this runs every tick)
        try:
            if self._timeline is not None and self._next_pulse == math.inf:
                self._resume_timeline(now)
            while True:
                t = self._next_pulse
                if self._release_at < t:
                    t = self._release_at
                if self._next_glitch < t:
                    t = self._next_glitch
                if self._glitch_release_at < t:
                    t = self._glitch_release_at
                if self._next_edge < t:
                    t = self._next_edge
                if t > now:
                    break
                if self._late_s is not None and now - t > self._late_s:
                    # Real time and this thread woke late: a real motor never bursts the
                    # pulses it missed, so the schedule moves on from now.
                    self._shift_schedule(now - t)
                    continue
                self._update_rate(t)
                if t == self._release_at:
                    self._release_at = math.inf
                    self._drive(t, False)
                elif t == self._glitch_release_at:
                    self._glitch_release_at = math.inf
                    self._drive(t, False)
                elif t == self._next_glitch:
                    self._next_glitch = t + GLITCH_EVERY_S
                    self._glitch_release_at = t + GLITCH_WIDTH_S
                    self._drive(t, True)
                elif t == self._next_edge:
                    self._recorded_edge(t)
                elif self._timeline is not None:
                    self._timeline_pulse(t, self._timeline)
                else:
                    if self.rate_ppm < MIN_RUNNING_PPM:
                        self._next_pulse = math.inf
                        continue
                    interval = self._pulse_interval()
                    self._drive(t, True)
                    self._last_pulse = t
                    self._release_at = t + interval / 2.0
                    self._next_pulse = t + interval
            self._update_rate(now)
            if (
                self._next_pulse == math.inf
                and self._timeline is None
                and not self._replaying
                and self.rate_ppm >= MIN_RUNNING_PPM
            ):
                self._next_pulse = now + self._pulse_interval()
        finally:
            lock.release()

    def quiet(self) -> bool:
        """Nothing will happen on the sensors until someone changes the gun: no tach
        edge scheduled, the motor at rest, the force a constant from the model (no
        timeline, no recorded readings, no noise), no fault injected, no replay.

        Virtual time may skip ticks only while this holds (:meth:`Bench.run_until`).
        """
        with self._lock:
            return (
                self.rate_ppm == 0.0
                and self._next_pulse == math.inf
                and self._release_at == math.inf
                and self._next_glitch == math.inf
                and self._glitch_release_at == math.inf
                and self._next_edge == math.inf
                and (self._timeline is None or self._timeline.finished)
                and self._force_timeline is None
                and self._raw_samples is None
                and not self._replaying
                and self.firmware_ppm is None
                and self.faults == GunFaults()
            )

    def _shift_schedule(self, delay: float) -> None:
        self._next_pulse += delay
        self._release_at += delay
        self._next_glitch += delay
        self._glitch_release_at += delay

    # -- the force sensor -----------------------------------------------------------
    def _raw_now(self) -> float:
        cfg = self._force_cfg
        recorded = self._raw_samples
        timeline = self._force_timeline
        if recorded is None and timeline is None:  # the force model: every tick of a session
            force = self.force_n
            if self.rate_ppm > 0.0 and force > 0.0:
                sigma = max(FORCE_NOISE_MIN_N, force * FORCE_NOISE_FRACTION)
                i = self._normal_at
                self._normal_at = i + 1 if i + 1 < NOISE_TABLE else 0
                force += sigma * self._normals[i]
            return cfg.zero + force / cfg.newtons_per_unit
        if recorded is not None:
            return recorded.raw(self.now())
        assert timeline is not None
        return cfg.zero + timeline.newtons(self.now()) / cfg.newtons_per_unit

    def adc_value(self) -> float:
        """What the ADC channel sees (0..1 before quantisation)."""
        fault = self.faults.force
        if fault == "none":
            return self._raw_now()
        if fault == "open":
            return 0.0
        if fault == "short":
            return 1.0
        return self._frozen_raw if self._frozen_raw is not None else self._raw_now()


def simulated_rig(
    hw: HardwareConfig,
    clock: Clock,
    *,
    seed: int = 0,
    at: Callable[[float], None] | None = None,
) -> tuple[Rig, SimulatedGun]:
    """The real drivers on mock pins clocked by ``clock``, with a simulated gun behind them.

    The gun reads the motor pin and drives the tach pin; its force reaches the force
    sensor through a simulated ADC (gpiozero's MCP3008 over mock SPI is too slow for
    long runs). ``at`` moves a virtual clock to each edge's time before it is driven.
    """
    bits = 10 if hw.force_sensor.adc == "mcp3008" else 12
    adc = SimulatedAdc(lambda: 0.0, bits=bits)  # connected to the gun once it exists
    rig = build_rig(hw, ClockedMockFactory(clock), adc=adc)
    gun = SimulatedGun(
        tach_pin=rig.tachometer.pin,
        tach_pull_up=hw.tachometer.pull_up,
        pulses_per_percussion=hw.tachometer.pulses_per_percussion,
        motor_pin=rig.switch.pin,
        motor_cfg=hw.motor_power,
        force_cfg=hw.force_sensor,
        seed=seed,
        at=at,
        start=clock.monotonic(),
        clock=clock,
    )
    adc.connect(gun.adc_value)
    return rig, gun
