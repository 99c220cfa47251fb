"""Arbitrary sensor timelines: the tach as periods, the force as samples or a pattern.

Edge times are exact in virtual time, so they are asserted exactly (to float rounding);
the limits they must trip are the mean-rate and sliding-window force rules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gunguard.sim.bench import Bench
from gunguard.sim.realtime import LiveActions
from gunguard.sim.simulate import simulate

#: calf-left capped at 2400 ppm (trips above 2448), max 90 N; 1 kHz loop.
CAPPED = {"regions": {"calf-left": {"max_ppm": 2400}}}


@pytest.fixture
def bench(cfg, gunguard_bench):
    """A bench on the capped config whose tach edges are also kept in ``bench.edges``."""

    def make(**overrides) -> Bench:
        b = gunguard_bench(cfg(**{**CAPPED, **overrides}))
        seen: list[tuple[float, bool]] = []
        judge = b.supervisor.on_tach_edge
        b.rig.tachometer.connect(lambda t, active: (seen.append((t, active)), judge(t, active)))
        b.edges = seen
        return b

    return make


def actives(b: Bench) -> list[float]:
    return [t for t, active in b.edges if active]


def test_tach_periods_give_exact_edge_times(bench):
    b = bench()
    b.select("calf-left")
    b.run_until(1.0)
    b.tach_periods([20, 30])
    b.run_until(1.2)
    assert actives(b)[:6] == pytest.approx([1.0, 1.02, 1.05, 1.07, 1.10, 1.12], abs=1e-9)
    releases = [t for t, active in b.edges if not active]
    assert releases[:3] == pytest.approx([1.01, 1.035, 1.06], abs=1e-9)  # half of each period
    assert b.trips() == []  # a mean of 25 ms is 2400 ppm: at the cap, not above it


def test_played_once_every_period_is_measured_then_silence(bench):
    b = bench()
    b.select("calf-left")
    b.gun(ppm=2000)  # the rate model, replaced by the timeline below
    b.run_until(1.0)
    b.run_until(2.0)
    b.edges.clear()
    b.tach_periods([20, 30], repeat=False)
    b.run_until(3.0)
    first = actives(b)[0]
    assert first >= 2.0
    assert actives(b) == pytest.approx([first, first + 0.02, first + 0.05], abs=1e-9)
    assert b.edges[-1] == (pytest.approx(first + 0.065), False)
    assert b.sim.rate_ppm == 0.0  # the motor model does not take over again


def test_percussion_periods_split_into_pulses(bench):
    b = bench(hardware={"tachometer": {"pulses_per_percussion": 2}})
    b.select("calf-left")
    b.run_until(0.5)
    b.tach_periods([40, 60], per="percussion")
    b.run_until(0.541)
    assert b.supervisor.rate_ppm == pytest.approx(60 / 0.04, rel=1e-6)  # one percussion
    b.run_until(0.7)
    assert actives(b)[:6] == pytest.approx([0.5, 0.52, 0.54, 0.57, 0.60, 0.62], abs=1e-9)


def test_no_pulses_without_power_and_the_pattern_pauses_with_it(bench):
    b = bench()
    b.tach_periods([25])
    b.run_until(1.0)
    assert b.edges == []  # power is off: the motor does not turn
    b.select("calf-left")
    b.run_until(1.1)
    assert actives(b)[:3] == pytest.approx([1.0, 1.025, 1.05], abs=1e-9)
    b.select(None)
    b.run_until(2.0)
    assert max(actives(b)) < 1.1
    b.select("calf-left")
    b.run_until(2.06)
    assert [t for t in actives(b) if t > 1.1] == pytest.approx([2.0, 2.025, 2.05], abs=1e-9)


def test_a_welded_switch_pulses_without_power(bench):
    b = bench()
    b.fault(power_switch="stuck_on")
    b.tach_periods([25])
    b.run_until(1.5)
    assert len(actives(b)) > 40
    assert b.trips() == ["power_switch_fault"]


def test_alternating_periods_trip_overspeed_on_their_mean(bench):
    # 18 ms (3333 ppm) and 30 ms (2000 ppm) alternate: never two over-cap periods in a
    # row, but the mean (24 ms: 2500 ppm) is above calf-left's 2448 ppm trip rate.
    b = bench()
    b.select("calf-left")
    b.run_until(1.0)
    b.tach_periods([18, 30])
    b.run_until(3.0)
    trip = b.first("trip")
    assert trip is not None and trip.fields["reason"] == "overspeed"
    assert trip.fields["detail"].startswith("mean ")
    assert 1.25 <= trip.t <= 1.25 + 0.03  # the mean is judged over 0.25 s (+ one period)


def test_a_burst_pattern_trips_overforce(bench):
    # 60 ms at 150 N every 130 ms: each burst shorter than the 100 ms debounce.
    b = bench()
    b.select("calf-left")
    b.gun(ppm=2000, force_n=20)
    b.run_until(1.0)
    b.force_pattern(150, 0, 130, high_ms=60)
    b.run_until(3.0)
    assert b.trips() == ["overforce"]
    assert 1.0 < b.first("trip").t < 1.4


def test_force_pattern_duty_and_exact_values(bench):
    b = bench()
    b.force_pattern(40, 10, 100, duty=0.25)
    seen = []
    for k in range(8):
        b.run_until(k * 0.05 + 0.001)
        seen.append(round(b.supervisor.force_n))
    assert seen == [40, 10, 40, 10, 40, 10, 40, 10]  # 25 ms high of every 100 ms


@pytest.mark.parametrize(
    ("repeat", "expected"), [(True, [10, 20, 30, 10, 20]), (False, [10, 20, 30, 30, 30])]
)
def test_force_samples_repeated_or_once(bench, repeat, expected):
    b = bench()
    b.run_until(1.0)
    b.force_samples([10, 20, 30], 100, repeat=repeat)
    seen = []
    for k in range(5):
        b.run_until(1.0 + k * 0.1 + 0.05)
        seen.append(round(b.supervisor.force_n))
    assert seen == expected


def test_the_model_takes_over_again(bench):
    b = bench()
    b.select("calf-left")
    b.tach_periods([25])
    b.force_samples([30], 10)
    b.run_until(1.0)
    b.gun(ppm=1500, force_n=12)
    b.run_until(2.0)
    assert b.supervisor.rate_ppm == pytest.approx(1500, rel=0.03)
    assert b.supervisor.force_n == pytest.approx(12, abs=3)


def test_a_restart_keeps_the_timelines(bench):
    b = bench()
    b.tach_periods([25])
    b.force_samples([30], 10)
    b.run_until(1.0)
    b.restart()
    b.select("calf-left")
    b.run_until(1.5)
    assert b.supervisor.rate_ppm == pytest.approx(2400, rel=1e-6)
    assert b.supervisor.force_n == pytest.approx(30, abs=0.5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.tach_periods([]), "tach_periods_ms: give at least one period"),
        (lambda b: b.tach_periods([20, 0]), "tach_periods_ms[1] = 0: a period is > 0"),
        (lambda b: b.tach_periods([20], per="edge"), "per: 'edge'"),
        (lambda b: b.force_samples([10, 500], 1), "force_samples_n[1] = 500 N: outside"),
        (lambda b: b.force_samples([10], 0), "sample_ms = 0"),
        (lambda b: b.force_pattern(150, 0, 130), "exactly one of duty and high_ms"),
        (lambda b: b.force_pattern(150, 0, 130, high_ms=130), "shorter than period_ms"),
        (lambda b: b.force_pattern(150, -20, 130, duty=0.5), "force_pattern.low_n = -20 N"),
    ],
)
def test_bench_methods_refuse_bad_input(bench, call, message):
    b = bench()
    with pytest.raises(ValueError, match=None) as raised:
        call(b)
    assert message in str(raised.value)


def test_the_adc_range_follows_the_calibration(bench):
    b = bench(hardware={"force_sensor": {"zero": 0.1, "newtons_per_unit": 100.0}})
    b.force_samples([-10, 90], 5)  # exactly the ends of what the ADC reads
    with pytest.raises(ValueError, match=r"-10\.\.90 N: zero 0\.1, newtons_per_unit 100"):
        b.force_samples([91], 5)


SCENARIO = """\
config: capped.yaml
duration: 4
steps:
  - {at: 0.5, region: calf-left}
  - {at: 0.5, gun: {tach_periods_ms: [18, 30], repeat: true, force_n: 20}}
  - {at: 1.5, reset: true, gun: {percussion_periods_ms: [25, 27]}}
  - {at: 1.6, region: calf-left}
  - at: 2.0
    gun: {force_pattern: {high_n: 150, low_n: 0, period_ms: 130, high_ms: 60}}
  - {at: 3.0, reset: true, gun: {force_samples_n: [20, 25, 30], sample_ms: 5, repeat: false}}
  - {at: 3.1, region: calf-left}
expect:
  - {trip: overspeed, between: [0.75, 0.8]}
  - {trip: overforce, between: [2.0, 2.4]}
"""


@pytest.fixture
def write(tmp_path: Path):
    (tmp_path / "capped.yaml").write_text("regions: {calf-left: {max_ppm: 2400}}\n")

    def write(text: str) -> Path:
        path = tmp_path / "scenario.yaml"
        path.write_text(text)
        return path

    return write


def test_timeline_steps_in_a_scenario(capsys, write):
    rc = simulate(write(SCENARIO), config=None, as_json=True)
    out, err = capsys.readouterr()
    assert rc == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["trips"] == ["overspeed", "overforce"]


BAD_STEPS = [
    ("{tach_periods_ms: [20, -1]}", "steps[0].gun.tach_periods_ms[1] = -1"),
    ("{tach_periods_ms: []}", "steps[0].gun.tach_periods_ms = []"),
    ("{ppm: 2000, tach_periods_ms: [20]}", "one tach source per step: ppm and tach_periods_ms"),
    ("{force_n: 5, force_samples_n: [1], sample_ms: 1}", "one force source per step"),
    ("{force_samples_n: [1, 2]}", "force_samples_n and sample_ms go together"),
    ("{repeat: false}", "repeat applies to tach_periods_ms"),
    ("{tach_periods_ms: [20], repat: true}", "steps[0].gun.repat = True: unknown key"),
    (
        "{force_pattern: {high_n: 150, period_ms: 130, duty: 0.5, high_ms: 60}}",
        "give exactly one of duty (0..1) and high_ms",
    ),
    ("{force_pattern: {high_n: 150, period_ms: 130, duty: 1.5}}", "force_pattern.duty = 1.5"),
    ("{force_pattern: {high: 150, period_ms: 130, duty: 0.5}}", "force_pattern.high = 150"),
]


@pytest.mark.parametrize(("gun", "message"), BAD_STEPS)
def test_invalid_timeline_steps(capsys, write, gun, message):
    path = write(f"duration: 5\nsteps:\n  - at: 1\n    gun: {gun}\n")
    rc = simulate(path, config=None, as_json=True)
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    assert f"{path}:4: " in err, err
    assert message in err, err


def test_a_force_beyond_the_adc_is_named_with_its_line(capsys, write):
    path = write(
        "config: capped.yaml\nduration: 5\nsteps:\n"
        "  - {at: 1, gun: {force_samples_n: [10, 20], sample_ms: 1}}\n"
        "  - at: 2\n"
        "    gun:\n"
        "      force_samples_n:\n"
        "        - 10\n"
        "        - 300\n"
        "      sample_ms: 1\n"
    )
    rc = simulate(path, config=None, as_json=True)
    _, err = capsys.readouterr()
    assert rc == 2
    assert (
        f"{path}:9: steps[1].gun.force_samples_n[1] = 300.0: outside what the ADC reads with "
        "this calibration (-15..285 N: zero 0.05, newtons_per_unit 300)"
    ) in err, err


class _Gun:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


class _Driver:
    gun = _Gun()
    firmware = None


def test_live_actions_play_the_timelines_too():
    driver = _Driver()
    live = LiveActions(daemon=None, driver=driver)  # type: ignore[arg-type]
    live.tach_periods([20, 30], repeat=False)
    live.force_samples([1, 2], 5)
    live.force_pattern(150, 0, 130, duty=0.5)
    assert [name for name, _, _ in driver.gun.calls] == [
        "tach_periods",
        "force_samples",
        "force_pattern",
    ]
