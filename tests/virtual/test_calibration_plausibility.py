"""What the running supervisor notices of a wrong calibration (issue 11, item 7).

A wrong ``zero`` or ``newtons_per_unit`` that makes the unloaded head read more than
5 N below zero is a ``force_sensor_fault`` every tick and refused at arming; a
measured rate that stays at a simple ratio of the firmware's names
``pulses_per_percussion`` in the ``speed_mismatch`` detail. The simulated gun is the
truth (its force reaches the ADC through the config's calibration); the daemon is
given a wrong belief by changing the force sensor's calibration after the build.
"""

from __future__ import annotations

import re

import pytest

from gunguard.config import loader as configfile
from gunguard.config.schema import GunguardConfig
from gunguard.core.limits import NEGATIVE_FORCE_N
from gunguard.sim.bench import Bench
from gunguard.sim.scenario import FirmwareStep

CFG = GunguardConfig()
PER_UNIT = CFG.hardware.force_sensor.newtons_per_unit


def bench_believing_zero_off_by(newtons: float) -> Bench:
    """The sensor's true no-load reading is the config's zero; the daemon believes a zero
    ``newtons`` higher (so the unloaded head reads about ``-newtons``)."""
    bench = Bench(CFG)
    bench.rig.force.zero += newtons / PER_UNIT
    return bench


def test_a_zero_that_reads_the_unloaded_head_below_minus_5_n_trips_every_tick():
    bench = bench_believing_zero_off_by(30.0)
    bench.run(0.01)
    trip = bench.first("trip", reason="force_sensor_fault")
    assert trip is not None and trip.t <= 0.0011  # the first tick
    assert "a press cannot be negative" in trip.fields["detail"]
    assert "hardware.force_sensor.zero" in trip.fields["detail"]
    assert bench.reset()
    refusal = bench.select("calf-left")  # judged at arming too, before the next tick
    assert refusal is not None and refusal.reason == "force_sensor_fault"
    assert "gunguard calibrate" in refusal.detail
    assert not bench.power_on
    bench.run(0.01)
    assert bench.supervisor.latched is not None  # and again at the next tick


def test_a_too_large_scale_reads_a_small_offset_as_a_large_negative_force():
    bench = Bench(CFG)
    bench.rig.force.zero += 0.02  # 6 N at 300 N/unit...
    bench.rig.force.newtons_per_unit *= 10  # ...60 N at ten times the scale
    bench.run(0.01)
    trip = bench.first("trip", reason="force_sensor_fault")
    assert trip is not None and "-6" in trip.fields["detail"]


@pytest.mark.parametrize(
    ("off_n", "fault"), [(NEGATIVE_FORCE_N - 1.0, False), (NEGATIVE_FORCE_N + 1.0, True)]
)
def test_the_negative_force_bound_is_5_n(off_n, fault):
    bench = bench_believing_zero_off_by(off_n)
    if fault:
        bench.run(0.01)
        assert bench.trips() == ["force_sensor_fault"]
    else:
        assert bench.select("calf-left") is None
        bench.run(1.0)
        assert bench.trips() == [] and bench.power_on


SERIAL = """
regions: {calf-left: {max_ppm: 2400}}
serial: {required: true, heartbeat_ms: 100, heartbeat_timeout_ms: 500,
         mismatch_tolerance: 0.10, mismatch_s: 1.0, spin_up_grace_s: 1.0}
"""


def linked_bench() -> Bench:
    data, lines = configfile.parse_yaml(SERIAL, "serial.yaml")
    bench = Bench(configfile.validate(data, "serial.yaml", lines), seed=5)
    bench.run(0.5)  # the link comes up
    assert bench.select("calf-left") is None
    bench.run(0.2)  # the cap and the release reach the firmware
    bench.firmware_step(None, FirmwareStep(motor="on"))
    return bench


@pytest.mark.parametrize(("measured", "reported"), [(1100, 2200), (1800, 900), (700, 2100)])
def test_speed_mismatch_at_a_simple_ratio_names_pulses_per_percussion(measured, reported):
    """The firmware reports the true rate; the tach, with a wrong pulses_per_percussion,
    measures a multiple of it (here: the gun runs at ``measured``, the firmware says
    ``reported``)."""
    bench = linked_bench()
    bench.gun(ppm=measured)
    bench.run(1.0)
    bench.firmware_step(None, FirmwareStep(reported_ppm=reported))
    bench.run(2.0)
    trip = bench.first("trip", reason="speed_mismatch")
    assert trip is not None, bench.trips()
    detail = trip.fields["detail"]
    hint = re.search(
        r"the ratio (\d+\.\d+) suggests hardware\.tachometer\.pulses_per_percussion", detail
    )
    assert hint is not None, detail
    assert float(hint.group(1)) == pytest.approx(measured / reported, rel=0.04)
    assert "gunguard calibrate" in detail
    assert not bench.power_on


def test_speed_mismatch_at_no_simple_ratio_gives_no_hint():
    bench = linked_bench()
    bench.gun(ppm=1500)
    bench.run(1.0)
    bench.firmware_step(None, FirmwareStep(reported_ppm=2100))  # 0.71: not a simple ratio
    bench.run(2.0)
    trip = bench.first("trip", reason="speed_mismatch")
    assert trip is not None
    assert "pulses_per_percussion" not in trip.fields["detail"]
