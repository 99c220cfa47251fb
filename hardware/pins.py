"""Pin factories: gpiozero's own on a Pi, mock pins on a bench, mock pins in virtual time.

gpiozero's ``MockPin`` stamps every change with ``time.monotonic()``. The
:class:`ClockedMockFactory` below stamps with an injected clock instead, so the
simulated gun can drive real gpiozero edge callbacks (``when_changed(ticks, state)``)
at exact virtual times: the supervisor code above the pins is the same in both.
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from importlib.metadata import entry_points
from operator import attrgetter
from typing import Any, Protocol

from gpiozero import Device, PinFactoryFallback
from gpiozero.pins import Factory
from gpiozero.pins.mock import MockFactory, MockPin, PinState


class Clock(Protocol):
    """Anything that tells monotonic time (gunguard's clocks do)."""

    def monotonic(self) -> float: ...


class _MonotonicClock:
    def monotonic(self) -> float:
        return time.monotonic()


class ClockedMockPin(MockPin):
    """A mock pin whose change times come from its factory's clock.

    Its history is bounded: a dynamic motor enable toggles a thousand times a second.
    """

    HISTORY = 4096

    def __init__(self, factory: MockFactory, info: Any) -> None:
        super().__init__(factory, info)
        self.states = deque(self.states, maxlen=self.HISTORY)

    def clear_states(self) -> None:
        # MockPin.clear_states stamps real time; this pin lives on the factory's clock.
        self._last_change = self._factory.ticks()
        self.states = deque([PinState(0.0, self._state)], maxlen=self.HISTORY)

    #: gpiozero's ``state`` reads through a lambda and ``_get_state``; the simulated gun
    #: reads the motor pin before every tick, so read the same attribute directly.
    state = property(attrgetter("_state"), lambda self, value: self._set_state(value))

    @property
    def last_change(self) -> float:
        """Clock time of the latest change of state."""
        return self._last_change

    def _change_state(self, value: bool) -> bool:
        if self._state != value:
            t = self._factory.ticks()
            self._state = value
            self.states.append(PinState(t - self._last_change, value))
            self._last_change = t
            return True
        return False


class ClockedMockFactory(MockFactory):
    """gpiozero's mock factory on an injected clock (virtual time in ``simulate``)."""

    def __init__(self, clock: Clock, **kwargs: Any) -> None:
        self._clock = clock
        kwargs.setdefault("pin_class", ClockedMockPin)
        super().__init__(**kwargs)

    def ticks(self) -> float:  # type: ignore[override]
        return self._clock.monotonic()

    @staticmethod
    def ticks_diff(later: float, earlier: float) -> float:
        return later - earlier


class PinFactoryError(RuntimeError):
    """The requested pin factory is not available: gunguard will not guess another."""


def pin_factory_by_name(name: str, clock: Clock | None = None) -> Factory:
    """A new pin factory of the named kind, without gpiozero's silent fallback.

    The one lookup of a factory by name, for the daemon and for ``power-off``:
    ``mock`` gives clocked mock pins on ``clock`` (real time when None); any other
    name is looked up like ``GPIOZERO_PIN_FACTORY`` (``lgpio``, ``rpigpio``,
    ``pigpio``, ``native``). An unknown or unusable factory raises
    :class:`PinFactoryError`.
    """
    if name.lower() == "mock":
        return ClockedMockFactory(clock or _MonotonicClock())
    group = entry_points(group="gpiozero_pin_factories")
    for ep in group:
        if ep.name in (name, name.lower()):
            try:
                factory: Factory = ep.load()()
            except Exception as exc:
                raise PinFactoryError(f"pin factory {name!r} is not usable here: {exc}") from exc
            return factory
    known = ", ".join(sorted({ep.name for ep in group} | {"mock"}))
    raise PinFactoryError(f"unknown pin factory {name!r} (known: {known})")


def make_pin_factory(name: str | None, clock: Clock | None = None) -> Factory:
    """The configured factory; ``None`` lets gpiozero choose, but a fallback is an error.

    gpiozero's ``PinFactoryFallback`` warning becomes :class:`PinFactoryError`: on a
    device a quiet fallback means driving pins through the wrong library.
    """
    if name is not None:
        return pin_factory_by_name(name, clock)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PinFactoryFallback)
        try:
            return Device._default_pin_factory()
        except (PinFactoryFallback, Exception) as exc:
            raise PinFactoryError(f"no usable GPIO pin factory: {exc}") from exc
