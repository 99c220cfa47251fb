"""A simulated massage gun on mock pins: motor, tachometer, force, injectable faults.

It reads the motor power pin like the real power stage would (the active level, or a
fed charge pump in ``dynamic`` mode), spins its motor up and down (within 0.4 s),
pulses the tachometer pin at the resulting rate with ±1 % seeded jitter, and presents
the set force to the ADC. The caller moves it through time with :meth:`advance`; in
virtual time ``at`` moves the clock to each edge first, so every edge carries its
exact simulated timestamp through gpiozero's ``when_changed``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
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


@dataclass
class GunFaults:
    force: str = "none"
    tach: str = "none"
    power_switch: str = "none"


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
        self._at = at or (lambda t: None)
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
        #: In real time (no ``at``), edges later than this are skipped, not burst.
        self._late_s: float | None = None if at is not None else REALTIME_LATE_S
        self._frozen_raw: float | None = None

    # -- what the scenario changes ------------------------------------------------
    def set(self, ppm: float | None = None, force_n: float | None = None) -> None:
        if ppm is not None:
            self.set_ppm = float(ppm)
        if force_n is not None:
            self.force_n = float(force_n)

    def inject(
        self,
        *,
        force: str | None = None,
        tach: str | None = None,
        power_switch: str | None = None,
        now: float = 0.0,
    ) -> None:
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

    def _update_rate(self, now: float) -> None:
        dt = now - self._last_update
        self._last_update = now
        if dt <= 0.0:
            return
        running = self.firmware_motor_on and self.powered(now)
        if self.firmware_ppm is not None:
            rate = self.firmware_ppm if running else 0.0
            self.rate_ppm = rate if rate >= MIN_RUNNING_PPM else 0.0
            return
        target = min(self.set_ppm, self.firmware_cap_ppm) if running else 0.0
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

    def advance(self, now: float) -> None:
        """Emit every tach edge due up to ``now``, in time order."""
        while True:
            t = min(self._next_pulse, self._release_at, self._next_glitch, self._glitch_release_at)
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
            else:
                if self.rate_ppm < MIN_RUNNING_PPM:
                    self._next_pulse = math.inf
                    continue
                interval = self._pulse_interval()
                self._drive(t, True)
                self._release_at = t + interval / 2.0
                self._next_pulse = t + interval
        self._update_rate(now)
        if self._next_pulse == math.inf and self.rate_ppm >= MIN_RUNNING_PPM:
            self._next_pulse = now + self._pulse_interval()

    def _shift_schedule(self, delay: float) -> None:
        self._next_pulse += delay
        self._release_at += delay
        self._next_glitch += delay
        self._glitch_release_at += delay

    # -- the force sensor -----------------------------------------------------------
    def _raw_now(self) -> float:
        cfg = self._force_cfg
        force = self.force_n
        if self.rate_ppm > 0.0 and force > 0.0:
            sigma = max(FORCE_NOISE_MIN_N, force * FORCE_NOISE_FRACTION)
            force += self._rng.gauss(0.0, sigma)
        return cfg.zero + force / cfg.newtons_per_unit

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
    gun: list[SimulatedGun] = []
    bits = 10 if hw.force_sensor.adc == "mcp3008" else 12
    adc = SimulatedAdc(lambda: gun[0].adc_value(), bits=bits)
    rig = build_rig(hw, ClockedMockFactory(clock), adc=adc)
    gun.append(
        SimulatedGun(
            tach_pin=rig.tachometer.pin,
            tach_pull_up=hw.tachometer.pull_up,
            pulses_per_percussion=hw.tachometer.pulses_per_percussion,
            motor_pin=rig.switch.pin,
            motor_cfg=hw.motor_power,
            force_cfg=hw.force_sensor,
            seed=seed,
            at=at,
            start=clock.monotonic(),
        )
    )
    return rig, gun[0]
