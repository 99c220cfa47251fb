"""Dose bookkeeping for one region: counted seconds per frequency band.

dose = Σ seconds_in_band / band_cap. 1.0 is the whole allowance of one treatment
(5 min at <= 2400 ppm, 2 min above, or any mix); the supervisor warns at 0.9 and
trips at 1.0. Under the band's ``min_minutes`` at the end is reported as under-dosed.
"""

from __future__ import annotations

from collections.abc import Sequence

from gunguard.core.limits import RegionLimits

#: Rounding slack when comparing a dose with 1.0: the running sum and a sum recomputed
#: from stored seconds differ in the last bits (0.3 ms of a 5-minute allowance).
DOSE_EPSILON = 1e-6


class RegionDose:
    """The treatment in progress for one region."""

    __slots__ = ("_inverse_caps", "dose", "limits", "seconds", "warned")

    def __init__(self, limits: RegionLimits, seconds: Sequence[float] = ()) -> None:
        self.limits = limits
        self.seconds = [0.0] * len(limits.bands)
        for i, s in enumerate(seconds[: len(self.seconds)]):
            self.seconds[i] = s
        self._inverse_caps = tuple(1.0 / b.max_seconds for b in limits.bands)
        self.dose = sum(s * inv for s, inv in zip(self.seconds, self._inverse_caps, strict=True))
        self.warned = False

    def add(self, band: int, seconds: float) -> float:
        """Count ``seconds`` of contact in ``band``; returns the new dose."""
        self.seconds[band] += seconds
        self.dose += seconds * self._inverse_caps[band]
        return self.dose

    @property
    def exhausted(self) -> bool:
        """The treatment's whole allowance is used: trip now, refuse arming later."""
        return self.dose >= 1.0 - DOSE_EPSILON

    @property
    def contact_seconds(self) -> float:
        return sum(self.seconds)

    @property
    def under_dosed(self) -> bool:
        """Less than the effective minimum at low frequency (information only)."""
        first = self.limits.bands[0]
        return first.min_seconds is not None and 0.0 < self.seconds[0] < first.min_seconds

    def seconds_left(self) -> float:
        """Seconds left in the lowest band at the current dose."""
        return max(0.0, 1.0 - self.dose) * self.limits.bands[0].max_seconds

    def summary(self) -> dict[str, object]:
        return {
            "contact_seconds": round(self.contact_seconds, 3),
            "dose": round(self.dose, 4),
            "seconds_by_band": [round(s, 3) for s in self.seconds],
            "under_dosed": self.under_dosed,
        }
