"""Dose: counted time kept with the rate it was counted at, judged against an allowance.

Time is counted per **rate bucket** of :data:`BUCKET_PPM` percussions per minute, not
per band of some config: bucket ``i`` holds rates in ``(i * 25, (i + 1) * 25]`` ppm and
is judged by the rule for its *top* rate (the stricter side). A region's allowance is
the seconds it may receive per bucket (:func:`allowance_for`): its config band's time,
never more than the built-in ceiling for that rate (5 min at <= 2400 ppm, 2 min above),
whatever bands the config lists. So above 2400 ppm always counts against the 2-minute
allowance, and a treatment's dose can be recomputed under any config from what is stored.

The dose formula (the one place it is written):

    dose = Σ_bucket contact_seconds[bucket] / allowance[bucket]

1.0 is one treatment's whole allowance (5 min at <= 2400 ppm, 2 min above, or any
mix); the supervisor warns at 0.9 and trips at 1.0. A treatment keeps the *tightest*
allowance it has been judged by (a reload or a restart with another config never lowers
its dose, nor allows more than the tighter config would).

The **backstop** counts percussion time whether or not the force sensor confirms
contact: ``Σ percussion_seconds / allowance / BACKSTOP_FACTOR``. At 1.0 the region trips
too, so a force sensor stuck below the contact threshold cannot give unlimited time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gunguard.core.limits import RegionLimits

#: Width of a rate bucket (percussions per minute). 2400 is a bucket edge.
BUCKET_PPM = 25.0
#: Buckets up to 4000 ppm (above any hardware_max_ppm plus its tolerance); faster
#: rates land in the last one.
BUCKETS = 160
#: Powered percussion, confirmed or not, may reach this many times the allowance.
BACKSTOP_FACTOR = 1.5
#: Rounding slack when comparing a dose with 1.0 (a sum recomputed from stored seconds
#: differs from the running sum in the last bits).
DOSE_EPSILON = 1e-6
#: A dose (or backstop) at or past this is used up.
DOSE_FULL = 1.0 - DOSE_EPSILON

Allowance = tuple[float, ...]  # seconds allowed per bucket


def bucket_of(ppm: float) -> int:
    """The bucket a (positive) rate is counted in."""
    i = math.ceil(ppm / BUCKET_PPM) - 1
    return 0 if i < 0 else (BUCKETS - 1 if i >= BUCKETS else i)


def bucket_top(i: int) -> float:
    """The highest rate of bucket ``i``: the rate it is judged at."""
    return (i + 1) * BUCKET_PPM


def allowance_for(
    bands: Sequence[tuple[float, float]], ceiling: Sequence[tuple[float, float]]
) -> Allowance:
    """Seconds per bucket from ``bands`` ((up_to_ppm, max_seconds), rising), never more
    than ``ceiling`` (the built-in bands). A rate above every band takes the last band."""

    def seconds_at(ppm: float, table: Sequence[tuple[float, float]]) -> float:
        for up_to, seconds in table:
            if ppm <= up_to:
                return seconds
        return table[-1][1]

    return tuple(
        min(seconds_at(bucket_top(i), bands), seconds_at(bucket_top(i), ceiling))
        for i in range(BUCKETS)
    )


def tightest(a: Allowance, b: Allowance | None) -> Allowance:
    """The elementwise smaller of two allowances (None: no earlier one)."""
    if b is None or a == b:  # (the usual case: judged by one allowance throughout)
        return a
    return tuple(x if x <= y else y for x, y in zip(a, b, strict=True))


def dose_of(seconds: Mapping[int, float], allowance: Allowance) -> float:
    """THE dose formula: Σ seconds per bucket / allowance of that bucket."""
    return sum(s / allowance[i] for i, s in seconds.items())


def band_seconds(seconds: Mapping[int, float], tops: Sequence[float]) -> list[float]:
    """Seconds per band, for bands with these top rates (above every band: the last)."""
    out = [0.0] * len(tops)
    for i, s in seconds.items():
        top = bucket_top(i)
        k = next((j for j, up_to in enumerate(tops) if top <= up_to), len(tops) - 1)
        out[k] += s
    return out


def compress(allowance: Allowance) -> list[list[float]]:
    """``[[top_ppm, seconds], ...]`` runs of equal seconds (how the store keeps it)."""
    runs: list[list[float]] = []
    for i, seconds in enumerate(allowance):
        if runs and runs[-1][1] == seconds:
            runs[-1][0] = bucket_top(i)
        else:
            runs.append([bucket_top(i), seconds])
    return runs


def expand(runs: Sequence[Sequence[float]]) -> Allowance:
    """The inverse of :func:`compress`."""
    return allowance_for([(float(top), float(s)) for top, s in runs], [(math.inf, math.inf)])


@dataclass
class Counted:
    """What a treatment in progress has received, as the book keeps it."""

    contact: dict[int, float] = field(default_factory=dict)  # bucket -> seconds of contact
    percussion: dict[int, float] = field(default_factory=dict)  # bucket -> seconds percussing
    allowance: Allowance | None = None  # the tightest allowance it was judged by
    dose_floor: float = 0.0  # a dose it already reached (never shown lower)

    def __bool__(self) -> bool:
        return bool(self.contact or self.percussion)


class RegionDose:
    """The treatment in progress for one region, judged against its allowance."""

    __slots__ = (
        "_inverse",
        "allowance",
        "backstop",
        "contact",
        "dose",
        "limits",
        "percussion",
        "warned",
    )

    def __init__(self, limits: RegionLimits, counted: Counted | None = None) -> None:
        self.limits = limits
        counted = counted if counted is not None else Counted()
        self.allowance = tightest(limits.allowance, counted.allowance)
        self._inverse = tuple(1.0 / s for s in self.allowance)
        self.contact = [0.0] * BUCKETS
        self.percussion = [0.0] * BUCKETS
        for i, s in counted.contact.items():
            self.contact[i] = s
        for i, s in counted.percussion.items():
            self.percussion[i] = s
        inv = self._inverse
        self.dose = max(
            counted.dose_floor, sum(s * inv[i] for i, s in enumerate(self.contact) if s)
        )
        self.backstop = sum(s * inv[i] for i, s in enumerate(self.percussion) if s)
        self.backstop /= BACKSTOP_FACTOR
        self.warned = False

    def add(self, bucket: int, contact_s: float, percussion_s: float) -> float:
        """Count one tick in ``bucket``; returns the new dose."""
        inv = self._inverse[bucket]
        if contact_s:
            self.contact[bucket] += contact_s
            self.dose += contact_s * inv
        self.percussion[bucket] += percussion_s
        self.backstop += percussion_s * inv / BACKSTOP_FACTOR
        return self.dose

    @property
    def exhausted(self) -> bool:
        """The treatment's whole allowance is used: trip now, refuse arming later."""
        return self.dose >= DOSE_FULL

    @property
    def backstop_exhausted(self) -> bool:
        """Percussion without confirmed contact has reached the backstop bound."""
        return self.backstop >= DOSE_FULL

    @property
    def contact_seconds(self) -> float:
        return sum(self.contact)

    @property
    def percussion_seconds(self) -> float:
        return sum(self.percussion)

    def counted(self) -> Counted:
        """What this treatment has received (to carry over to new limits)."""
        return Counted(
            {i: s for i, s in enumerate(self.contact) if s},
            {i: s for i, s in enumerate(self.percussion) if s},
            self.allowance,
            self.dose,
        )

    def seconds_by_band(self) -> list[float]:
        """Contact seconds per band of the region's config (display only)."""
        contact = {i: s for i, s in enumerate(self.contact) if s}
        return band_seconds(contact, [b.up_to_ppm for b in self.limits.bands])

    @property
    def under_dosed(self) -> bool:
        """Less than the effective minimum at low frequency (information only)."""
        first = self.limits.bands[0]
        low = self.seconds_by_band()[0]
        return first.min_seconds is not None and 0.0 < low < first.min_seconds

    def seconds_left(self) -> float:
        """Seconds left in the lowest band at the current dose."""
        return max(0.0, 1.0 - self.dose) * self.limits.bands[0].max_seconds

    def summary(self) -> dict[str, object]:
        return {
            "contact_seconds": round(self.contact_seconds, 3),
            "percussion_seconds": round(self.percussion_seconds, 3),
            "dose": round(self.dose, 4),
            "backstop": round(self.backstop, 4),
            "seconds_by_band": [round(s, 3) for s in self.seconds_by_band()],
            "under_dosed": self.under_dosed,
        }
