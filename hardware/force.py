"""Force sensor behind an SPI ADC, calibrated from raw (0..1) to newtons.

The ADC is anything with a ``value`` attribute in 0..1: gpiozero's
``MCP3008``/``MCP3208`` on a Pi or on mock SPI, or a simulated ADC. Whether a reading
is plausible (open, shorted, a negative press) is the safety core's judgement
(:mod:`gunguard.core.plausibility`), not the driver's.
"""

from __future__ import annotations

from typing import Protocol

from gpiozero import MCP3008, MCP3208
from gpiozero.pins import Factory


class Adc(Protocol):
    """The one thing the force sensor needs from an ADC."""

    @property
    def value(self) -> float: ...


class ForceSensor:
    """Reads the ADC and converts to newtons: ``(raw - zero) * newtons_per_unit``."""

    __slots__ = ("_adc", "newtons_per_unit", "zero")

    def __init__(self, adc: Adc, *, zero: float, newtons_per_unit: float) -> None:
        self._adc = adc
        self.zero = zero
        self.newtons_per_unit = newtons_per_unit

    def read_raw(self) -> float:
        return self._adc.value

    def newtons(self, raw: float) -> float:
        return (raw - self.zero) * self.newtons_per_unit

    def close(self) -> None:
        close = getattr(self._adc, "close", None)
        if close is not None:
            close()


def open_adc(
    chip: str, *, channel: int, spi_device: int, pin_factory: Factory
) -> MCP3008 | MCP3208:
    """The gpiozero ADC (``mcp3008`` or ``mcp3208``) on SPI port 0, CE0 or CE1."""
    adc_class = MCP3008 if chip == "mcp3008" else MCP3208
    return adc_class(channel=channel, port=0, device=spi_device, pin_factory=pin_factory)
