"""What the safety core needs from the hardware, as protocols.

The gpiozero drivers in :mod:`gunguard.hardware` satisfy these structurally; the
core never imports them, so it can be read, tested and reasoned about on its own.
"""

from __future__ import annotations

from typing import Protocol


class ForceInput(Protocol):
    """The force sensor: a raw reading (0..1) and its calibration to newtons."""

    def read_raw(self) -> float: ...

    def newtons(self, raw: float) -> float: ...


class PowerOutput(Protocol):
    """The switch in the motor's power line. ``off`` is safe from any thread, any time."""

    def on(self, now: float) -> None: ...

    def off(self) -> None: ...

    def refresh(self, now: float) -> None:
        """Called every tick while on (a dynamic enable keeps toggling)."""
        ...
