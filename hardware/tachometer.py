"""Tachometer on a GPIO input, reporting timestamped edges.

gpiozero's ``when_activated`` carries no timestamp, so this driver hooks the
pin-level ``when_changed(ticks, state)``: on lgpio the ticks are the kernel's edge
timestamps, on mock pins the (injected) clock's. gpiozero holds that callback by weak
reference; the bound method stays alive as long as this object does, and the daemon
keeps this object for its whole life.
"""

from __future__ import annotations

from collections.abc import Callable

from gpiozero import DigitalInputDevice
from gpiozero.pins import Factory

EdgeHandler = Callable[[float, bool], None]


class Tachometer:
    """Calls ``on_edge(timestamp, active)`` for every change of the sensor pin.

    With ``pull_up`` the sensor pulls the line low as a magnet or mark passes (open
    collector hall or optical sensor), so *active* means low.

    >>> from gpiozero.pins.mock import MockFactory
    >>> seen = []
    >>> tach = Tachometer("GPIO17", pull_up=True, pin_factory=MockFactory(),
    ...                   on_edge=lambda t, active: seen.append(active))
    >>> tach.pin.drive_low(); tach.pin.drive_high()
    >>> seen
    [True, False]
    """

    def __init__(
        self, pin: str, *, pull_up: bool, pin_factory: Factory, on_edge: EdgeHandler
    ) -> None:
        self._device = DigitalInputDevice(pin, pull_up=pull_up, pin_factory=pin_factory)
        self.pin = self._device.pin
        self._active_state = not pull_up
        self._on_edge = on_edge
        self.pin.edges = "both"
        self.pin.when_changed = self._changed

    def connect(self, on_edge: EdgeHandler) -> None:
        """Send edges to ``on_edge`` from now on (the supervisor, once it exists)."""
        self._on_edge = on_edge

    def _changed(self, ticks: float, state: bool) -> None:
        self._on_edge(ticks, bool(state) == self._active_state)

    def close(self) -> None:
        self.pin.when_changed = None
        self._device.close()
