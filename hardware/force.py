"""Force sensor behind an SPI ADC, calibrated from raw (0..1) to newtons.

A raw reading outside ``valid_min..valid_max`` means the sensor is open or shorted,
not a small or a huge force; the supervisor treats it as a fault. The ADC is anything
with a ``value`` attribute in 0..1: gpiozero's ``MCP3008``/``MCP3208`` on a Pi or on
mock SPI, or the simulated ADC in ``simulate``.
"""

from __future__ import annotations

from typing import Protocol

from gpiozero import MCP3008, MCP3208
from gpiozero.pins import Factory

from controller.config import ForceSensorConfig


class Adc(Protocol):
    """The one thing the force sensor needs from an ADC."""

    @property
    def value(self) -> float: ...


class ForceSensor:
    """Reads the ADC and converts to newtons with the configured calibration."""

    __slots__ = ("_adc", "_newtons_per_unit", "_zero", "valid_max", "valid_min")

    def __init__(self, adc: Adc, cfg: ForceSensorConfig) -> None:
        self._adc = adc
        self._zero = cfg.zero
        self._newtons_per_unit = cfg.newtons_per_unit
        self.valid_min = cfg.valid_min
        self.valid_max = cfg.valid_max

    def read_raw(self) -> float:
        return self._adc.value

    def newtons(self, raw: float) -> float:
        return (raw - self._zero) * self._newtons_per_unit

    def plausible(self, raw: float) -> bool:
        return self.valid_min <= raw <= self.valid_max

    def describe_fault(self, raw: float) -> str:
        if raw < self.valid_min:
            return f"raw {raw:.4f} below valid_min {self.valid_min:g}: sensor open"
        return f"raw {raw:.4f} above valid_max {self.valid_max:g}: sensor shorted"

    def close(self) -> None:
        close = getattr(self._adc, "close", None)
        if close is not None:
            close()


def open_adc(cfg: ForceSensorConfig, pin_factory: Factory) -> MCP3008 | MCP3208:
    """The configured gpiozero ADC on SPI port 0 (CE0 or CE1)."""
    adc_class = MCP3008 if cfg.adc == "mcp3008" else MCP3208
    return adc_class(channel=cfg.channel, port=0, device=cfg.spi_device, pin_factory=pin_factory)
