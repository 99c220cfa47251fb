"""ADCs for the bench: an MCP3xxx on gpiozero's mock SPI, and a fast simulated one.

gpiozero ships ``MockSPIDevice`` but no MCP3008 on it. :class:`MockMCP3xxx` speaks the
chip's protocol bit by bit, so tests can prove the full gpiozero ``MCP3008`` path
(software SPI over mock pins) end to end. It costs about 130 µs a read, too slow for
long virtual-time runs: there :class:`SimulatedAdc` stands in at the ADC boundary and
the force-sensor code above it is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gpiozero.pins.mock import MockSPIDevice

# SPI0 pins on a Pi (BCM): SCLK, MOSI, MISO, CE0, CE1.
SPI0_CLOCK, SPI0_MOSI, SPI0_MISO = "GPIO11", "GPIO10", "GPIO9"
SPI0_SELECT = ("GPIO8", "GPIO7")


class MockMCP3xxx(MockSPIDevice):
    """The slave side of an MCP3008 (10 bit) or MCP3208 (12 bit), single-ended.

    Set ``values[channel]`` to a fraction 0..1; a read returns it quantised.
    """

    def __init__(self, bits: int = 10, spi_device: int = 0, **kwargs: Any) -> None:
        super().__init__(SPI0_CLOCK, SPI0_MOSI, SPI0_MISO, SPI0_SELECT[spi_device], **kwargs)
        self.bits = bits
        self.values = [0.0] * 8

    def on_bit(self) -> None:
        # Start bit, then single/differential and three channel bits; the chip then
        # samples for one clock, sends a null bit and the result, MSB first.
        try:
            start = self.rx_buf.index(1)
        except ValueError:
            return
        if len(self.rx_buf) == start + 5:
            bits = self.rx_buf[start + 2 : start + 5]
            channel = bits[0] << 2 | bits[1] << 1 | bits[2]
            full_scale = (1 << self.bits) - 1
            code = round(min(max(self.values[channel], 0.0), 1.0) * full_scale)
            self.tx_buf = [0, 0] + [(code >> i) & 1 for i in range(self.bits - 1, -1, -1)]


class SimulatedAdc:
    """An ADC whose reading is computed on demand (0..1, quantised like the chip)."""

    __slots__ = ("_full_scale", "_source")

    def __init__(self, source: Callable[[], float], bits: int = 10) -> None:
        self._source = source
        self._full_scale = (1 << bits) - 1

    def connect(self, source: Callable[[], float]) -> None:
        """Read from ``source`` from now on (the simulated gun, built after the rig)."""
        self._source = source

    @property
    def value(self) -> float:
        raw = self._source()
        if raw <= 0.0:
            return 0.0
        if raw >= 1.0:
            return 1.0
        return round(raw * self._full_scale) / self._full_scale
