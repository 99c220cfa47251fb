"""The rules a calibration reading must pass (gunguard.core.calibration): steady,
plausible, moved the right way by a known weight, a whole number of pulses per
percussion. Each refusal says what was wrong."""

from __future__ import annotations

import random

import pytest

from gunguard.core import calibration as rules
from gunguard.core.calibration import Refused

RANGE = {"valid_min": 0.02, "valid_max": 0.98}


def steady(level: float, n: int = 64, noise: float = 0.0005, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, noise) for _ in range(n)]


def test_a_steady_unloaded_reading_gives_its_mean_as_zero():
    values = steady(0.0512)
    result = rules.zero_from(values, **RANGE)
    assert result.zero == pytest.approx(sum(values) / len(values))
    assert result.readings.values == tuple(values)


@pytest.mark.parametrize(
    ("values", "why"),
    [
        (steady(0.05, noise=0.01), "the reading is noisy"),
        ([0.05 + 0.0002 * i for i in range(64)], "the reading is drifting"),
        ([*steady(0.05, 32), 0.08, *steady(0.05, 31, seed=2)], "the readings jump"),
        (steady(0.01), "below valid_min 0.02: the sensor reads as open"),
        ([0.0] * 64, "below valid_min"),
        ([1.0] * 64, "above valid_max 0.98: the sensor reads as shorted"),
        (steady(0.05, n=5), "5 readings; at least 8 are needed"),
        ([*steady(0.05, 63), float("nan")], "not a number"),
    ],
    ids=["noisy", "drifting", "spike", "open", "zero", "short", "few", "nan"],
)
def test_an_unsteady_or_implausible_zero_is_refused_with_the_reason(values, why):
    with pytest.raises(Refused, match=why):
        rules.zero_from(values, **RANGE)


def test_the_scale_is_the_weight_over_the_move():
    loaded = steady(0.12)
    result = rules.scale_from(loaded, zero=0.05, weight_kg=2.0, **RANGE)
    moved = sum(loaded) / len(loaded) - 0.05
    assert result.newtons_per_unit == pytest.approx(2.0 * 9.81 / moved)
    assert result.weight_n == pytest.approx(19.62)
    assert result.full_scale_n == pytest.approx((0.98 - 0.05) * result.newtons_per_unit)


def test_a_weight_that_did_not_move_the_reading_is_refused():
    with pytest.raises(Refused, match="the 2 kg weight did not move the reading"):
        rules.scale_from(steady(0.052), zero=0.05, weight_kg=2.0, **RANGE)


def test_a_move_lost_in_noise_is_refused():
    """0.012 is more than MIN_MOVE, but not five times the readings' noise (0.003)."""
    with pytest.raises(Refused, match="did not move"):
        rules.scale_from(steady(0.062, noise=0.003), zero=0.05, weight_kg=2.0, **RANGE)


def test_a_reading_that_moved_the_wrong_way_is_refused():
    with pytest.raises(Refused, match="moved the wrong way"):
        rules.scale_from(steady(0.03), zero=0.05, weight_kg=2.0, **RANGE)


@pytest.mark.parametrize("weight", [0.0, -1.0, 51.0, float("nan")])
def test_an_impossible_weight_is_refused(weight):
    with pytest.raises(Refused, match="give the known weight"):
        rules.scale_from(steady(0.12), zero=0.05, weight_kg=weight, **RANGE)


def test_a_saturating_weight_is_refused():
    with pytest.raises(Refused, match="saturated"):
        rules.scale_from(steady(0.99), zero=0.05, weight_kg=20.0, **RANGE)


def rates(ppm: float, n: int = 30, spread: float = 0.005) -> list[float]:
    rng = random.Random(7)
    return [ppm * (1.0 + rng.uniform(-spread, spread)) for _ in range(n)]


@pytest.mark.parametrize(
    ("measured", "configured", "reference", "expected"),
    [
        (1800, 1, 1800, 1),  # confirmed
        (3600, 1, 1800, 2),  # two marks: the daemon measures double
        (900, 2, 1800, 1),  # configured 2, really 1: it measures half
        (1800 * 42 / 5, 5, 1800, 42),  # a 7-pole-pair motor's hall edges, set to 5
        (1800 * 0.97, 1, 1800, 1),  # a nominal speed setting 3 % off
    ],
)
def test_pulses_per_percussion_from_the_measured_and_the_known_rate(
    measured, configured, reference, expected
):
    result = rules.pulses_per_percussion_from(
        rates(measured), configured_ppp=configured, reference_ppm=reference
    )
    assert result.pulses_per_percussion == expected
    assert result.ratio == pytest.approx(measured * configured / reference, rel=0.01)


@pytest.mark.parametrize(
    ("measured", "configured", "reference", "why"),
    [
        (2700, 1, 1800, "1.50 pulses per percussion is not close to a whole number"),
        (1800 * 42.4 / 5, 5, 1800, r"42\.\d+ pulses per percussion is not close"),
        (200, 1, 1800, "outside 1..64"),
        (1800, 1, 0, "give the gun's known rate"),
        (1800, 1, 5000, "give the gun's known rate"),
    ],
    ids=["three-halves", "many-pulses-off", "too-few", "no-reference", "too-fast"],
)
def test_a_ratio_far_from_a_whole_number_is_refused(measured, configured, reference, why):
    with pytest.raises(Refused, match=why):
        rules.pulses_per_percussion_from(
            rates(measured), configured_ppp=configured, reference_ppm=reference
        )


def test_an_unsteady_or_stopped_rate_is_refused():
    with pytest.raises(Refused, match="was not steady"):
        rules.pulses_per_percussion_from(
            rates(1800, spread=0.2), configured_ppp=1, reference_ppm=1800
        )
    with pytest.raises(Refused, match="no percussion measured in 1 of 30"):
        rules.pulses_per_percussion_from(
            [*rates(1800, n=29), 0.0], configured_ppp=1, reference_ppm=1800
        )
    with pytest.raises(Refused, match="at least 8"):
        rules.pulses_per_percussion_from(rates(1800, n=3), configured_ppp=1, reference_ppm=1800)
