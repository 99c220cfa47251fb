"""The hardware assembly: pin factory, tachometer, force sensor, motor switch, and in
simulation the simulated gun wired to the same pins.

``build_rig`` is the one place that turns ``hardware:`` config into driver objects,
for the daemon on a Pi, for the bench on mock pins and for ``simulate`` in virtual
time alike; only the factory and the ADC behind the force sensor differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gpiozero import Device
from gpiozero.pins import Factory

from controller.clock import Clock
from controller.config import GunguardConfig
from hardware.force import ForceSensor, open_adc
from hardware.mock_adc import SimulatedAdc
from hardware.motor import MotorSwitch
from hardware.pins import make_pin_factory
from hardware.simgun import SimulatedGun
from hardware.tachometer import Tachometer


def _ignore_edge(t: float, active: bool) -> None:
    """Edges before the supervisor is connected: nothing is armed, nothing to judge."""


@dataclass
class Rig:
    factory: Factory
    tachometer: Tachometer
    force: ForceSensor
    switch: MotorSwitch
    gun: SimulatedGun | None = None
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Power off first, then release the pins. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.switch.close()
        self.tachometer.close()
        self.force.close()


def build_rig(
    cfg: GunguardConfig,
    clock: Clock,
    *,
    simulated_gun: bool = False,
    seed: int = 0,
    at: Callable[[float], None] | None = None,
    factory: Factory | None = None,
) -> Rig:
    """Construct the drivers; the motor switch first, so power is off before anything.

    ``simulated_gun`` puts the pins on mock pins (clocked by ``clock``) and a
    :class:`SimulatedGun` behind them, with a simulated ADC at the ADC boundary.
    """
    hw = cfg.hardware
    if factory is None:
        factory = make_pin_factory("mock" if simulated_gun else hw.pin_factory, clock)
    # gpiozero's software SPI and shared devices consult the global factory.
    Device.pin_factory = factory
    switch = MotorSwitch(hw.motor_power, factory)
    tach = Tachometer(
        hw.tachometer.pin,
        pull_up=hw.tachometer.pull_up,
        pin_factory=factory,
        on_edge=_ignore_edge,
    )
    gun = None
    if simulated_gun:
        gun = SimulatedGun(
            tach_pin=tach.pin,
            tach_pull_up=hw.tachometer.pull_up,
            pulses_per_percussion=hw.tachometer.pulses_per_percussion,
            motor_pin=switch.pin,
            motor_cfg=hw.motor_power,
            force_cfg=hw.force_sensor,
            seed=seed,
            at=at,
            start=clock.monotonic(),
        )
        bits = 10 if hw.force_sensor.adc == "mcp3008" else 12
        adc = SimulatedAdc(gun.adc_value, bits=bits)
        force = ForceSensor(adc, hw.force_sensor)
    else:
        force = ForceSensor(open_adc(hw.force_sensor, factory), hw.force_sensor)
    return Rig(factory=factory, tachometer=tach, force=force, switch=switch, gun=gun)
