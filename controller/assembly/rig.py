"""The hardware: the ``hardware:`` config turned into gpiozero drivers.

``build_rig`` is the one place that does it, for the daemon on a Pi, for the bench on
mock pins and for ``simulate`` in virtual time alike; only the pin factory and the
ADC behind the force sensor differ. The motor switch is built first, off, so power is
off before anything else exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpiozero import Device
from gpiozero.pins import Factory

from gunguard.config.schema import HardwareConfig
from gunguard.hardware.force import Adc, ForceSensor, open_adc
from gunguard.hardware.motor import MotorSwitch
from gunguard.hardware.tachometer import Tachometer


def _ignore_edge(t: float, active: bool) -> None:
    """Edges before the supervisor is connected: nothing is armed, nothing to judge."""


@dataclass
class Rig:
    factory: Factory
    tachometer: Tachometer
    force: ForceSensor
    switch: MotorSwitch
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Power off first, then release the pins. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.switch.close()
        self.tachometer.close()
        self.force.close()


def build_rig(hw: HardwareConfig, factory: Factory, *, adc: Adc | None = None) -> Rig:
    """Construct the drivers on ``factory``; the motor switch first, so power is off.

    ``adc`` stands in for the configured SPI ADC (a simulated one in virtual time).
    """
    # gpiozero's software SPI and shared devices consult the global factory.
    Device.pin_factory = factory
    motor = hw.motor_power
    switch = MotorSwitch(
        motor.pin,
        pin_factory=factory,
        active_high=motor.active_high,
        dynamic=motor.mode == "dynamic",
        toggle_hz=motor.toggle_hz,
    )
    try:
        tach = Tachometer(
            hw.tachometer.pin,
            pull_up=hw.tachometer.pull_up,
            pin_factory=factory,
            on_edge=_ignore_edge,
        )
        fs = hw.force_sensor
        if adc is None:
            adc = open_adc(
                fs.adc, channel=fs.channel, spi_device=fs.spi_device, pin_factory=factory
            )
        force = ForceSensor(adc, zero=fs.zero, newtons_per_unit=fs.newtons_per_unit)
    except BaseException:
        switch.close()
        raise
    return Rig(factory=factory, tachometer=tach, force=force, switch=switch)
