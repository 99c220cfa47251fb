"""Effective limits: plain numbers the control loop reads.

Built once per config (and again on reload) by :mod:`gunguard.config.resolve`, so
the hot path never walks pydantic models, never looks up defaults and never divides
by minutes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

#: Consecutive whole percussions (each ``pulses_per_percussion`` pulses, not
#: overlapping) over the cap that make an overspeed: one is jitter.
OVERSPEED_CONFIRM = 2
#: One whole percussion faster than this many times ``hardware_max_ppm`` is no motor's:
#: a fault on its own (alternating fast and slow periods cannot average it away).
IMPLAUSIBLE_RATE_FACTOR = 1.25
#: Below this rate the gun is not percussing (the tach is treated as stopped).
MIN_PERCUSSION_PPM = 300.0
#: The mean rate is judged over the percussions of at least this long (one short period
#: moves it by its shortfall / 0.25 s: jitter does not trip, an uneven pattern does).
RATE_WINDOW_S = 0.25
#: Force is judged over every sliding window of this length: time above the limit in it
#: at most ``force_debounce_ms``, and the mean force in it at most the limit.
FORCE_WINDOW_S = 1.0
#: Contact, once entered at ``contact_force_n``, is left only below this fraction of it...
CONTACT_RELEASE_FRACTION = 0.5
#: ...held for longer than this: a light press is not lost to sensor noise.
CONTACT_HOLD_S = 0.25
#: A force reading this far below zero is a miscalibrated or broken sensor, not a pull.
NEGATIVE_FORCE_N = 5.0


@dataclass(frozen=True, slots=True)
class BandLimit:
    up_to_ppm: float
    max_seconds: float
    min_seconds: float | None


@dataclass(frozen=True, slots=True)
class RegionLimits:
    """What one region may receive."""

    name: str
    allowed: bool
    cap_ppm: float
    trip_ppm: float  # cap x (1 + overspeed_tolerance)
    max_force_n: float
    bands: tuple[BandLimit, ...]
    attachment: str | None
    note: str | None
    #: Seconds allowed per rate bucket (gunguard.core.dose): the bands, never more than
    #: the built-in ceilings for each rate.
    allowance: tuple[float, ...]

    def band_index(self, ppm: float) -> int:
        """The band a rate falls in; above every band counts as the last (and trips)."""
        for i, band in enumerate(self.bands):
            if ppm <= band.up_to_ppm:
                return i
        return len(self.bands) - 1


@dataclass(frozen=True, slots=True)
class Scar:
    region: str
    since: dt.date


@dataclass(frozen=True, slots=True)
class Screening:
    """The person's answers to the screening questions (docs/config.md)."""

    conditions: tuple[str, ...] = ()
    normal_sensation: bool = True
    heel_bursitis: bool = False
    muscular_chest: bool = False
    wounds: tuple[str, ...] = ()
    scars: tuple[Scar, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """Every number the supervisor judges against (built by :mod:`gunguard.config.resolve`)."""

    hardware_max_ppm: float
    pulses_per_percussion: int
    min_pulse_interval_s: float  # shorter than any motor can make: noise
    stopped_after_s: float  # no edge for this long: not percussing
    contact_force_n: float
    no_tach_contact_s: float
    force_debounce_s: float
    force_frozen_s: float
    max_force_n: float  # the global force limit (regions may only tighten it)
    force_valid_min: float  # raw ADC reading below this: sensor open
    force_valid_max: float  # raw ADC reading above this: sensor shorted
    contact_release_n: float  # contact is left below this (held CONTACT_HOLD_S)
    max_loop_gap_s: float
    tick_s: float
    rest_hours: float
    treatment_gap_s: float
    regions: dict[str, RegionLimits]
    screening: Screening = field(default_factory=Screening)
