"""Calibration rules: are these readings good enough to become a trusted input?

``hardware.force_sensor.zero``, ``newtons_per_unit`` and
``hardware.tachometer.pulses_per_percussion`` are *trusted inputs*: every force and
rate limit is judged through them, and while running the supervisor can only catch a
gross error (a press reading negative, :mod:`gunguard.core.plausibility`; a measured
rate at a simple ratio of the firmware's, ``speed_mismatch``). So ``gunguard
calibrate`` accepts a value only from readings that pass these rules: steady (not
noisy, not drifting, no spike), inside the sensor's valid range, moved the right way
and far enough by a known weight, and a whole number of tach pulses per percussion.
Each refusal says what was wrong with the readings and what to do.

Pure functions over numbers: the command reads the hardware and asks the person.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: m/s², as the procedure states it (standard gravity, 9.80665, differs by 0.03 %).
GRAVITY = 9.81
#: Fewest readings a step accepts: fewer cannot show noise or drift.
MIN_SAMPLES = 8
#: Raw units (ADC fraction 0..1). 0.004 is 4 steps of a 10-bit ADC, about 1.2 N at the
#: default 300 N/unit: a zero that noisy or drifting would be wrong by more than the
#: margin between "no contact" and the negative-force fault (5 N).
MAX_NOISE = 0.004  # sample standard deviation
MAX_DRIFT = 0.004  # mean of the last quarter minus mean of the first quarter
MAX_SPREAD = 0.02  # largest minus smallest reading: a bump, a spike, a loose wire
#: A known weight must move the reading at least this much (10 steps of a 10-bit ADC)...
MIN_MOVE = 0.01
#: ...and at least this many times the readings' noise, or the scale is mostly noise.
MIN_MOVE_OVER_NOISE = 5.0
#: A weight heavier than this is not something one rests on a massage gun's head.
MAX_WEIGHT_KG = 50.0
#: Tach pulses per percussion must come out within this of a whole number.
PPP_TOLERANCE = 0.1
PPP_MIN, PPP_MAX = 1, 64  # the schema's bounds for pulses_per_percussion
#: The measured rate may vary this much (relative standard deviation) during the tach step.
MAX_RATE_SPREAD = 0.03
#: A reference rate above this is not a massage gun (the built-in hardware ceiling).
MAX_REFERENCE_PPM = 3600.0


class Refused(ValueError):
    """The readings cannot become a calibration value; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Readings:
    """Raw readings of one step and the numbers they are judged by."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def noise(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def drift(self) -> float:
        """Mean of the last quarter minus mean of the first: a creeping reading."""
        quarter = max(1, len(self.values) // 4)
        return statistics.fmean(self.values[-quarter:]) - statistics.fmean(self.values[:quarter])

    @property
    def spread(self) -> float:
        return max(self.values) - min(self.values)

    def describe(self) -> str:
        return (
            f"{len(self.values)} readings: mean {self.mean:.4f}, noise {self.noise:.4f}, "
            f"drift {self.drift:+.4f}, spread {self.spread:.4f}"
        )


def _steady(values: Sequence[float], what: str, valid_min: float, valid_max: float) -> Readings:
    """The readings, if steady and each inside ``valid_min..valid_max``; else :class:`Refused`."""
    if len(values) < MIN_SAMPLES:
        raise Refused(f"{what}: {len(values)} readings; at least {MIN_SAMPLES} are needed")
    if any(not math.isfinite(v) for v in values):
        raise Refused(f"{what}: a reading is not a number: the ADC read failed")
    r = Readings(tuple(values))
    low, high = min(values), max(values)
    if r.mean < valid_min:
        raise Refused(
            f"{what}: the reading {r.mean:.4f} is below valid_min {valid_min:g}: the sensor "
            "reads as open (check its wiring and the ADC channel)"
        )
    if r.mean > valid_max:
        raise Refused(
            f"{what}: the reading {r.mean:.4f} is above valid_max {valid_max:g}: the sensor "
            "reads as shorted or saturated (check its wiring; with a weight, use a lighter one)"
        )
    if r.noise > MAX_NOISE:
        raise Refused(
            f"{what}: the reading is noisy (standard deviation {r.noise:.4f}, at most "
            f"{MAX_NOISE:g}): hold the gun still, resting on a firm surface, away from the "
            "motor's supply leads, and try again"
        )
    if abs(r.drift) > MAX_DRIFT:
        raise Refused(
            f"{what}: the reading is drifting ({r.drift:+.4f} from the first quarter of the "
            f"readings to the last, at most {MAX_DRIFT:g}): let the sensor settle (a minute "
            "after power-up or after a load), keep it still, and try again"
        )
    if r.spread > MAX_SPREAD or low < valid_min or high > valid_max:
        raise Refused(
            f"{what}: the readings jump ({low:.4f} to {high:.4f}; at most {MAX_SPREAD:g} "
            f"apart, all inside {valid_min:g}..{valid_max:g}): something touched the head or "
            "a connection is loose; try again"
        )
    return r


@dataclass(frozen=True, slots=True)
class ZeroResult:
    zero: float
    readings: Readings


def zero_from(values: Sequence[float], *, valid_min: float, valid_max: float) -> ZeroResult:
    """``zero`` from readings with nothing on the head: their mean, if steady and plausible."""
    readings = _steady(values, "zero (nothing on the head)", valid_min, valid_max)
    return ZeroResult(readings.mean, readings)


@dataclass(frozen=True, slots=True)
class ScaleResult:
    newtons_per_unit: float
    weight_n: float
    moved: float  # mean loaded reading minus zero
    readings: Readings
    #: The largest force the sensor can report before reading as shorted (valid_max).
    full_scale_n: float


def scale_from(
    values: Sequence[float],
    *,
    zero: float,
    weight_kg: float,
    valid_min: float,
    valid_max: float,
) -> ScaleResult:
    """``newtons_per_unit = weight_kg x g / (loaded - zero)``, if the weight moved the reading."""
    if not (math.isfinite(weight_kg) and 0.0 < weight_kg <= MAX_WEIGHT_KG):
        raise Refused(
            f"weight: {weight_kg:g} kg; give the known weight in kg, 0 to {MAX_WEIGHT_KG:g}"
        )
    readings = _steady(values, f"scale ({weight_kg:g} kg on the head)", valid_min, valid_max)
    moved = readings.mean - zero
    needed = max(MIN_MOVE, MIN_MOVE_OVER_NOISE * readings.noise)
    if abs(moved) < needed:
        raise Refused(
            f"scale: the {weight_kg:g} kg weight did not move the reading (zero {zero:.4f}, "
            f"with the weight {readings.mean:.4f}: {moved:+.4f}, at least {needed:.4f} is "
            "needed): is it resting on the head alone? A heavier weight moves it more"
        )
    if moved < 0.0:
        raise Refused(
            f"scale: the reading moved the wrong way with the weight on ({zero:.4f} -> "
            f"{readings.mean:.4f}): a press must raise it; check the sensor's wiring "
            "(reversed signal leads) and that the weight presses on the head"
        )
    weight_n = weight_kg * GRAVITY
    per_unit = weight_n / moved
    return ScaleResult(per_unit, weight_n, moved, readings, (valid_max - zero) * per_unit)


@dataclass(frozen=True, slots=True)
class TachResult:
    pulses_per_percussion: int
    ratio: float  # tach pulses per minute / reference percussions per minute
    mean_ppm: float  # the rate the daemon measured, with the configured pulses per percussion
    rates: tuple[float, ...]


def pulses_per_percussion_from(
    rates_ppm: Sequence[float], *, configured_ppp: int, reference_ppm: float
) -> TachResult:
    """The whole number of tach pulses per percussion, from measured rates and a known rate.

    The daemon measures ``rate = pulses per minute / configured_ppp``, so the tach gave
    ``rate x configured_ppp`` pulses per minute while the gun made ``reference_ppm``
    percussions per minute.
    """
    if not (math.isfinite(reference_ppm) and 0.0 < reference_ppm <= MAX_REFERENCE_PPM):
        raise Refused(
            f"reference rate: {reference_ppm:g} ppm; give the gun's known rate, "
            f"0 to {MAX_REFERENCE_PPM:g} percussions per minute"
        )
    if len(rates_ppm) < MIN_SAMPLES:
        raise Refused(f"tach: {len(rates_ppm)} rate readings; at least {MIN_SAMPLES} are needed")
    stopped = sum(1 for r in rates_ppm if not r > 0.0)
    if stopped:
        raise Refused(
            f"tach: no percussion measured in {stopped} of {len(rates_ppm)} readings: run the "
            "gun steadily at the reference setting for the whole measurement"
        )
    mean = statistics.fmean(rates_ppm)
    spread = statistics.stdev(rates_ppm) / mean
    if spread > MAX_RATE_SPREAD:
        raise Refused(
            f"tach: the measured rate was not steady (varied {spread:.1%}, at most "
            f"{MAX_RATE_SPREAD:.0%}): hold the speed setting, out of contact, and try again"
        )
    ratio = mean * configured_ppp / reference_ppm
    whole = round(ratio)
    if not PPP_MIN <= whole <= PPP_MAX:
        raise Refused(
            f"tach: {ratio:.2f} pulses per percussion is outside {PPP_MIN}..{PPP_MAX}: "
            "check the reference rate and the tachometer pin"
        )
    if abs(ratio - whole) > PPP_TOLERANCE:
        raise Refused(
            f"tach: {ratio:.2f} pulses per percussion is not close to a whole number "
            f"(within {PPP_TOLERANCE:g}): the reference rate is not exact (a speed "
            "setting's nominal rate may be off by several percent; with many pulses per "
            "percussion use the rate the gun's firmware reports), or the tachometer misses "
            "or doubles pulses. Nothing was changed"
        )
    return TachResult(int(whole), ratio, mean, tuple(rates_ppm))
