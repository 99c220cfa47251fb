"""Effective limits: plain numbers the control loop reads.

Built once per config (and again on reload) by :mod:`gunguard.config.resolve`, so
the hot path never walks pydantic models, never looks up defaults and never divides
by minutes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

#: Consecutive over-cap percussion periods that make an overspeed (one is jitter).
OVERSPEED_CONFIRM = 2
#: Below this rate the gun is not percussing (the tach is treated as stopped).
MIN_PERCUSSION_PPM = 300.0


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
    max_loop_gap_s: float
    tick_s: float
    rest_hours: float
    treatment_gap_s: float
    regions: dict[str, RegionLimits]
    screening: Screening = field(default_factory=Screening)
