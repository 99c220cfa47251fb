"""The switch in the motor's power line: off unless the supervisor says on.

``static``: the pin holds the active level while power is on. ``dynamic``: while on,
the control loop calls :meth:`MotorSwitch.refresh` every tick and the pin toggles at
``toggle_hz``; external charge-pump or retriggerable-monostable hardware keeps power
only while the toggling continues, so a frozen process means power off, not just a
dead one.
"""

from __future__ import annotations

from gpiozero import DigitalOutputDevice
from gpiozero.pins import Factory


class MotorSwitch:
    """Motor power output, off at construction (level set atomically with direction)."""

    def __init__(
        self,
        pin: str,
        *,
        pin_factory: Factory,
        active_high: bool = True,
        dynamic: bool = False,
        toggle_hz: float = 500.0,
    ) -> None:
        self._device = DigitalOutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )
        self.pin = self._device.pin
        self._active_level = active_high
        self.dynamic = dynamic
        self._half_period = 0.5 / toggle_hz
        self._next_toggle = 0.0
        self._level = False  # the active level is on the pin (static), or toggling (dynamic)
        self.energised = False

    def on(self, now: float) -> None:
        """Energise: hold the active level, or start toggling."""
        self.energised = True
        self._write(True)
        self._next_toggle = now + self._half_period

    def off(self) -> None:
        """De-energise. Safe from any thread, at any time, any number of times."""
        self.energised = False
        self._write(False)

    def refresh(self, now: float) -> None:
        """Dynamic mode: keep the charge pump fed while energised (called every tick)."""
        if self.energised and self.dynamic and now >= self._next_toggle:
            self._write(not self._level)
            self._next_toggle += self._half_period
            if self._next_toggle <= now:
                self._next_toggle = now + self._half_period

    def _write(self, active: bool) -> None:
        self._level = active
        self.pin.state = active if self._active_level else not active

    def pin_is_inactive(self) -> bool:
        """Read the pin back: is it at the off level right now?"""
        return bool(self.pin.state) != self._active_level

    def close(self) -> None:
        """Leave the pin at the off level; releasing it is the hardware pull-down's job."""
        self.off()
        self._device.close()
