"""Last-resort "motor power off", run by the unit's ``ExecStopPost=``.

systemd runs it after every stop of the daemon, a SIGKILL or a watchdog abort
included, when nothing of the daemon is left to cut power. It claims the motor
pin afresh with ``initial_value=False``, checks that it reads back at the
inactive level and holds it there while this process lives. After the process
exits the pin is the kernel's and the hardware's: a Raspberry Pi kernel keeps
the last level by default, ``dtparam=strict_gpiod`` reverts it to an input, and
gpiozero may already have made it an input during interpreter shutdown. The
gate pull-down makes every one of those cases "off" (docs/raspberry-pi.md).

Wiring note: with an active-low enable (``active_high=False``) lgpio claims the
line as an output at level 0 (its default) and only then writes 1, a brief "on"
pulse. Wire the enable active-high with a pull-down.
"""

from __future__ import annotations

import logging
import os

from gpiozero import DigitalOutputDevice
from gpiozero.pins import Factory

from gunguard.hardware.pins import pin_factory_by_name

log = logging.getLogger(__name__)

# What the unit selects (GPIOZERO_PIN_FACTORY=lgpio) and gpiozero prefers.
DEFAULT_PIN_FACTORY = "lgpio"

# Devices held while the process lives. Dropping the last reference would run
# gpiozero's __del__ -> close() at once, which turns the pin into a floating input.
_held: list[DigitalOutputDevice] = []


def force_power_off(pin: str | int, active_high: bool, pin_factory: str | Factory | None) -> None:
    """Drive the motor power pin to its inactive level and keep it there until exit.

    ``pin`` is any gpiozero pin name (``"GPIO17"``, ``"BOARD11"``, ``17``).
    ``pin_factory`` names a factory (see :func:`pin_factory_by_name`), passes
    one (tests), or is None: then ``$GPIOZERO_PIN_FACTORY``, else ``lgpio``. The
    factory is private, never gpiozero's global one, whose exit handler would
    float the pin. Raises if the pin cannot be claimed or does not read back at
    the inactive level, so that the ``ExecStopPost=`` step fails loudly.
    """
    if pin_factory is None:
        pin_factory = os.environ.get("GPIOZERO_PIN_FACTORY") or DEFAULT_PIN_FACTORY
    factory = pin_factory_by_name(pin_factory) if isinstance(pin_factory, str) else pin_factory
    device = DigitalOutputDevice(
        pin, active_high=active_high, initial_value=False, pin_factory=factory
    )
    _held.append(device)
    inactive_level = not active_high
    level = bool(device.pin.state)
    if level != inactive_level:
        raise RuntimeError(
            f"motor power pin {device.pin} reads {int(level)} after power-off, "
            f"expected {int(inactive_level)}"
        )
    log.info(
        "motor power pin %s forced off (level %d, active_%s)",
        device.pin,
        int(level),
        "high" if active_high else "low",
    )


def release_held() -> None:
    """Close the devices :func:`force_power_off` holds (tests, long-lived callers).

    A closed lgpio pin becomes an input: only the pull-down then keeps power off.
    """
    while _held:
        _held.pop().close()
