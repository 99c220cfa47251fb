"""Physical controls on mock pins: the button arms and resets, the buzzer and LED warn.

The supervisor is a virtual-time bench's; the controls' own pins are gpiozero mock
pins in real time (a long press is real seconds). Waits poll with deadlines.
"""

from __future__ import annotations

import pytest
from gpiozero import Button, GPIOPinInUse
from gpiozero.pins.mock import MockFactory
from pydantic import ValidationError

from gunguard.config.schema import ControlsConfig, GunguardConfig
from gunguard.core import events
from gunguard.operator import controls as hc
from gunguard.operator.controls import PhysicalControls
from tests.waiting import wait_for as _wait_for

#: The bench of the running test: the button posts intents, which its supervisor applies
#: at a tick, so every wait lets the bench tick (virtual time) while it polls.
_benches: list = []


def wait_for(condition, what):
    bench = _benches[-1]

    def ticked():
        bench.run(0.005)
        return condition()

    return _wait_for(ticked, what)


PINS = {"button_pin": "GPIO5", "buzzer_pin": "GPIO6", "led_pin": "GPIO13"}


def two_calves(**limits: object) -> GunguardConfig:
    return GunguardConfig(
        regions={"calf-left": {"max_ppm": 2400}, "calf-right": {}, "neck": {"allowed": False}},
        **limits,
    )


@pytest.fixture
def rig(gunguard_bench):
    made: list[PhysicalControls] = []

    def make(cfg: GunguardConfig | None = None, *, start: bool = True, **pins: object):
        bench = gunguard_bench(cfg or two_calves())
        _benches.append(bench)
        controls = PhysicalControls(
            bench.supervisor,
            ControlsConfig(**{**PINS, "long_press_s": 0.3, **pins}),
            MockFactory(),
            poll_s=0.01,
            min_press_s=0.0,
        )
        made.append(controls)
        if start:
            controls.start()
        return bench, controls

    yield make
    for controls in made:
        controls.close()


def press(controls: PhysicalControls) -> None:
    assert controls.button is not None
    controls.button.pin.drive_low()
    controls.button.pin.drive_high()


def ons(device) -> int:
    """How many times the device's pin went to its active level."""
    return sum(1 for s in list(device.pin.states)[1:] if s.state)


def test_short_presses_step_through_the_allowed_regions_then_none(rig):
    bench, controls = rig()
    for expected in ("calf-left", "calf-right", None, "calf-left"):
        before = len(bench.events)
        press(controls)
        wait_for(
            lambda before=before: any(e.kind == events.REGION for e in bench.events[before:]),
            f"the press to select {expected}",
        )
        assert bench.supervisor.region == expected
        assert bench.power_on == (expected is not None)


def test_a_long_press_resets_and_its_release_is_not_a_short_press(rig):
    bench, controls = rig()
    press(controls)
    wait_for(lambda: bench.supervisor.region == "calf-left", "calf-left")
    bench.supervisor.trip("overspeed", "test")
    assert controls.button is not None
    controls.button.pin.drive_low()
    wait_for(lambda: bench.supervisor.latched is None, "the long press to reset")
    controls.button.pin.drive_high()
    assert bench.supervisor.region is None and not bench.power_on  # a reset never arms
    reset_at = len(bench.events)
    press(controls)
    wait_for(lambda: bench.supervisor.region is not None, "the next short press")
    selections = [e.get("region") for e in bench.events[reset_at:] if e.kind == events.REGION]
    # Exactly one step, by the shared rule: from no region, the first allowed one.
    assert selections == ["calf-left"], "exactly one step after the reset"


def test_a_press_while_tripped_only_sounds_the_refusal(rig):
    bench, controls = rig()
    bench.supervisor.trip("overforce", "test")
    wait_for(lambda: hc.TRIP_BEEP in controls.beeps, "the trip beep")
    before = len(bench.events)
    press(controls)
    wait_for(lambda: hc.REFUSED_BEEP in controls.beeps, "the refusal beep")
    assert bench.events[before:] == [] and bench.supervisor.region is None


def test_trip_sounds_three_long_beeps_and_flashes_the_led(rig):
    bench, controls = rig()
    press(controls)
    wait_for(lambda: controls.led is not None and controls.led.value == 1, "the LED on (armed)")
    bench.supervisor.trip("overspeed", "test")
    assert controls.buzzer is not None and controls.led is not None
    wait_for(lambda: ons(controls.buzzer) == 3 and not controls.buzzer.value, "three beeps")
    assert controls.beeps == [hc.TRIP_BEEP]
    wait_for(lambda: ons(controls.led) >= 4, "the LED to flash")
    bench.supervisor.reset()
    wait_for(lambda: controls.led.value == 0, "the LED off after the reset")


def test_dose_warning_then_dose_trip_from_the_supervisor(rig):
    short = two_calves(limits={"bands": [{"up_to_ppm": 3200, "max_minutes": 0.1}]})
    bench, controls = rig(short)
    press(controls)
    wait_for(lambda: bench.power_on, "calf-left armed")
    bench.gun(ppm=2000, force_n=30)
    bench.run(6.5)  # 6 s allowance: warned at 90 %, tripped at 100 %
    assert bench.trips() == ["region_dose"]
    wait_for(lambda: len(controls.beeps) == 2, "the warning and the trip")
    assert controls.beeps == [hc.WARNING_BEEP, hc.TRIP_BEEP]


def test_chirp_only_near_the_rate_cap(rig):
    bench, controls = rig()
    press(controls)
    wait_for(lambda: bench.power_on, "calf-left armed")
    bench.gun(ppm=2000, force_n=30)
    bench.run(1.0)
    polls = controls.polls
    wait_for(lambda: controls.polls >= polls + 3, "three state polls at 2000 ppm")
    assert hc.NEAR_CAP_CHIRP not in controls.beeps  # 83 % of the 2400 cap
    bench.gun(ppm=2330)  # 97 %: below the trip at 2448, above the warning at 2280
    bench.run(1.0)
    wait_for(lambda: hc.NEAR_CAP_CHIRP in controls.beeps, "the chirp")
    assert bench.trips() == []


def test_presses_before_the_daemon_runs_are_ignored(rig):
    bench, controls = rig(start=False)
    press(controls)
    controls.start()
    polls = controls.polls
    wait_for(lambda: controls.polls >= polls + 3, "the controls thread to run")
    assert bench.supervisor.region is None
    press(controls)
    wait_for(lambda: bench.supervisor.region == "calf-left", "a press once running")


def test_only_the_configured_devices_exist_and_close_releases_the_pins(rig):
    bench, controls = rig(buzzer_pin=None, led_pin=None)
    assert controls.buzzer is None and controls.led is None and controls.button is not None
    bench.supervisor.trip("overspeed", "test")
    wait_for(lambda: hc.TRIP_BEEP in controls.beeps, "the trip pattern, with no buzzer")
    factory = controls.button.pin_factory
    controls.close()
    Button("GPIO5", pin_factory=factory).close()  # free again


def test_controls_config_is_optional_and_checked():
    assert GunguardConfig().controls is None
    cfg = GunguardConfig(controls={"button_pin": "GPIO5"})
    assert cfg.controls == ControlsConfig(button_pin="GPIO5", long_press_s=2.0)
    with pytest.raises(ValidationError):
        ControlsConfig(long_press_s=0.1)
    with pytest.raises(ValidationError):
        ControlsConfig(button="GPIO5")


def test_a_pin_conflict_stops_the_start_with_power_off(tmp_path):
    from gunguard.config import loader as configfile
    from gunguard.config.schema import GunguardConfig
    from gunguard.service.daemon import Daemon

    path = tmp_path / "cfg.yaml"
    path.write_text(
        "hardware: {pin_factory: mock}\n"
        "regions: {calf-left: {}}\n"
        "controls: {button_pin: GPIO27}\n"  # the motor switch's pin
    )
    with pytest.raises(configfile.ConfigError, match=r"GPIO27 is already used by hardware\.motor"):
        configfile.load(str(path))  # check-config and run refuse it (exit 2) ...
    # ... and the daemon itself still stops the start with power off, should one get past.
    data, _ = configfile.parse_yaml(path.read_text(), str(path))
    daemon = Daemon(GunguardConfig.model_validate(data), simulated_gun=True)
    with pytest.raises(GPIOPinInUse, match="pin GPIO27 is already in use"):
        daemon.serve_operator(None)
    assert not daemon.supervisor.power_on
    assert daemon.rig._closed
