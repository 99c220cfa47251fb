"""The ``gunguard_bench`` fixture, as users' own tests get it from the installed plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from gunguard.config import loader as configfile
from gunguard.config.schema import GunguardConfig
from gunguard.sim.bench import Bench

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]


def test_the_plugin_is_registered_by_its_entry_point(pytestconfig):
    plugin = pytestconfig.pluginmanager.get_plugin("gunguard")
    assert plugin is not None
    assert plugin.__name__ == "gunguard.pytest_plugin"


def test_the_documented_example(gunguard_bench):
    """The plugin's docstring example, with the shipped Achilles config."""
    bench = gunguard_bench("achilles-tendinopathy")
    assert isinstance(bench, Bench)
    assert bench.select("calf-left") is None
    bench.gun(ppm=2200, force_n=30)
    bench.run(301)
    assert bench.trips() == ["region_dose"]
    assert not bench.power_on


def test_config_given_as_defaults_object_path_or_name(gunguard_bench, tmp_path):
    assert gunguard_bench().cfg == GunguardConfig()
    own = GunguardConfig(loop={"rate_hz": 500, "max_loop_gap_ms": 20})
    assert gunguard_bench(own).cfg is own
    path = tmp_path / "mine.yaml"
    path.write_text("regions:\n  calf-left: {max_ppm: 1800}\n")
    assert gunguard_bench(path).supervisor.limits.regions["calf-left"].cap_ppm == 1800
    assert gunguard_bench(str(path)).cfg == gunguard_bench(path).cfg
    assert gunguard_bench("default").cfg == configfile.load("default")


def test_bench_keyword_arguments_pass_through(gunguard_bench):
    a = gunguard_bench(seed=5, start_wall=1_800_000_000.0)
    assert a.seed == 5
    assert a.clock.wall() == 1_800_000_000.0


def test_an_invalid_config_raises_config_error(gunguard_bench, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("regions:\n  neck: {}\n")
    with pytest.raises(configfile.ConfigError, match=r"bad.yaml:2: regions.neck.allowed"):
        gunguard_bench(path)


def test_benches_are_independent(gunguard_bench):
    a = gunguard_bench()
    b = gunguard_bench()
    assert a.select("calf-left") is None
    a.gun(ppm=2200, force_n=30)
    a.run(1.0)
    assert a.power_on
    assert not b.power_on
    assert b.now == 0.0


USER_TEST = """
import pytest

made = []

@pytest.fixture
def watched(gunguard_bench):
    return gunguard_bench

def test_armed(watched):
    bench = watched("achilles-tendinopathy")
    made.append(bench)
    assert bench.select("calf-left") is None
    bench.gun(ppm=2200, force_n=30)
    bench.run(1.0)
    assert bench.power_on

def test_closed_after_the_test():
    (bench,) = made
    assert bench.rig._closed
    assert not bench.power_on
    assert bench.rig.switch.pin_is_inactive()

def test_overspeed(gunguard_bench):
    bench = gunguard_bench("achilles-tendinopathy")
    bench.select("calf-left")
    bench.gun(ppm=2600)
    bench.run(1.0)
    assert bench.trips() == ["overspeed"]
"""


def test_a_users_test_file_gets_the_fixture_and_closed_benches(pytester):
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3)


FACTORY_TEST = """
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

mine = MockFactory()

def test_a_project_sets_its_own_factory():
    Device.pin_factory = mine

def test_a_bench_uses_its_own(gunguard_bench):
    gunguard_bench()
    assert Device.pin_factory is not mine

def test_the_projects_factory_is_back():
    assert Device.pin_factory is mine
"""


def test_the_fixture_puts_gpiozeros_pin_factory_back(pytester):
    pytester.makepyfile(test_factory=FACTORY_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3)
