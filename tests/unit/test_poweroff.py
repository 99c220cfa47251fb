"""ExecStopPost power-off on gpiozero's MockFactory.

Pin histories are compared whole (``[s.state for s in pin.states]``):
``MockPin.assert_states`` zips, so a shorter history would pass silently.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.exc import PinInvalidPin
from gpiozero.pins.mock import MockFactory

from gunguard.hardware import poweroff
from gunguard.hardware.pins import PinFactoryError
from gunguard.hardware.poweroff import force_power_off, pin_factory_by_name, release_held


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    release_held()
    f.reset()


def states(factory: MockFactory, name: str) -> list[bool]:
    return [s.state for s in factory.pin(name).states]


def leave_running(factory: MockFactory, name: str, level: bool) -> None:
    """What a crashed daemon leaves behind: the pin still driven at ``level``."""
    pin = factory.pin(name)
    pin.function = "output"
    pin.state = level
    pin.clear_states()


def test_active_high_pin_left_on_is_driven_low(factory: MockFactory) -> None:
    leave_running(factory, "GPIO17", True)
    force_power_off("GPIO17", active_high=True, pin_factory=factory)
    pin = factory.pin("GPIO17")
    assert states(factory, "GPIO17") == [True, False]
    assert pin.function == "output"
    assert pin.state is False


def test_active_high_pin_already_off_never_goes_high(factory: MockFactory) -> None:
    force_power_off("GPIO17", active_high=True, pin_factory=factory)
    assert states(factory, "GPIO17") == [False]
    assert factory.pin("GPIO17").function == "output"


def test_active_low_pin_left_on_is_driven_high(factory: MockFactory) -> None:
    leave_running(factory, "GPIO22", False)
    force_power_off("GPIO22", active_high=False, pin_factory=factory)
    pin = factory.pin("GPIO22")
    assert states(factory, "GPIO22") == [False, True]
    assert pin.function == "output"
    assert pin.state is True


def test_pin_is_held_until_released(factory: MockFactory) -> None:
    force_power_off(17, active_high=True, pin_factory=factory)
    assert len(poweroff._held) == 1
    assert not poweroff._held[0].closed
    release_held()
    assert poweroff._held == []
    assert factory.pin("GPIO17").function == "input"


def test_factory_by_name_is_private_and_strict() -> None:
    before = Device.pin_factory
    mock = pin_factory_by_name("MOCK")  # case-insensitive, like GPIOZERO_PIN_FACTORY
    assert isinstance(mock, MockFactory)
    assert Device.pin_factory is before  # never installed as gpiozero's global factory
    mock.close()
    with pytest.raises(PinFactoryError, match="unknown pin factory 'no-such-factory'"):
        pin_factory_by_name("no-such-factory")


def test_none_uses_gpiozero_pin_factory_env(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[MockFactory] = []
    real = poweroff.pin_factory_by_name

    def spy(name: str) -> MockFactory:
        f = real(name)
        assert isinstance(f, MockFactory)
        created.append(f)
        return f

    monkeypatch.setattr(poweroff, "pin_factory_by_name", spy)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    try:
        force_power_off("GPIO27", active_high=True, pin_factory=None)
        assert len(created) == 1
        assert [s.state for s in created[0].pin("GPIO27").states] == [False]
    finally:
        release_held()
        for f in created:
            f.reset()


def test_pin_that_does_not_read_back_off_raises(
    factory: MockFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pin stuck high (a shorted driver): the write is ignored.
    pin = factory.pin("GPIO5")
    monkeypatch.setattr(type(pin), "_get_state", lambda self: True)
    with pytest.raises(RuntimeError, match="reads 1 after power-off, expected 0"):
        force_power_off("GPIO5", active_high=True, pin_factory=factory)


def test_unknown_pin_raises(factory: MockFactory) -> None:
    with pytest.raises(PinInvalidPin, match="GPIO99 is not a valid pin name"):
        force_power_off("GPIO99", active_high=True, pin_factory=factory)
    assert poweroff._held == []
