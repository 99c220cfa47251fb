"""How doses and times are shown to people: one presentation for every command.

* A **dose** is a percentage of the treatment's allowance, one decimal: ``8.9 %``
  (100 % is one treatment's whole allowance: 5 minutes at <= 2400 ppm, 2 minutes
  above, or any mix). :func:`percent`.
* A **time** is minutes:seconds: ``4:33``. :func:`mmss`.
* Per **rate band**, contact time used against the time allowed: ``0:27 / 5:00``,
  with the band named ``<= 2400 ppm`` or ``> 2400 ppm``. :func:`band_label`,
  :class:`BandUse`.

``gunguard status``, ``gunguard watch``, ``gunguard history`` and ``gunguard report``
all format through here. Their JSON keeps machine units: the dose as a fraction (1.0 =
the whole allowance) and times in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gunguard.core.ceilings import BUILT_IN_BANDS
from gunguard.core.dose import Allowance, band_seconds, bucket_of, expand

#: The guidance's bands (<= 2400 ppm, above) by their top rate: how history and reports
#: group a treatment's counted time, whatever bands the config that counted it had.
GUIDANCE_TOPS: tuple[float, ...] = tuple(top for top, _ in BUILT_IN_BANDS)


def percent(dose: float | None) -> str:
    """``0.0893`` -> ``8.9 %`` (of the treatment's allowance); None -> ``-``."""
    return "-" if dose is None else f"{dose * 100.0:.1f} %"


def mmss(seconds: float) -> str:
    """``174.2`` -> ``2:54`` (minutes:seconds, to the nearest second)."""
    whole = max(0, int(seconds + 0.5))
    return f"{whole // 60}:{whole % 60:02d}"


def band_label(up_to_ppm: float | None, below_ppm: float | None = None) -> str:
    """``<= 2400 ppm``; the open top band (``up_to_ppm`` None or inf) is ``> below_ppm``."""
    if up_to_ppm is None or math.isinf(up_to_ppm):
        return f"> {below_ppm:g} ppm" if below_ppm is not None else "any rate"
    return f"<= {up_to_ppm:g} ppm"


@dataclass(frozen=True, slots=True)
class BandUse:
    """Contact time in one rate band against the time the allowance gives that band."""

    label: str  # "<= 2400 ppm", "> 2400 ppm"
    up_to_ppm: float | None  # None: no top (the band above the last edge)
    used_s: float
    allowed_s: float  # the whole allowance spent in this band alone

    def text(self) -> str:
        """``0:27 / 5:00``."""
        return f"{mmss(self.used_s)} / {mmss(self.allowed_s)}"

    def left_s(self, dose: float) -> float:
        """Contact time left at this band's rates, with ``dose`` used."""
        return max(0.0, 1.0 - dose) * self.allowed_s


def guidance_bands(
    contact: Mapping[int, float], allowance: Sequence[Sequence[float]] | None
) -> list[BandUse]:
    """Contact seconds by bucket (gunguard.core.dose) grouped into the guidance's bands.

    ``allowance`` is the treatment's as stored (``[[top_ppm, seconds], ...]`` runs: the
    tightest it was judged by); a band's allowed time is the tightest of its buckets.
    None (not recorded): the built-in ceilings.
    """
    per_bucket: Allowance = expand(allowance if allowance is not None else BUILT_IN_BANDS)
    used = band_seconds(contact, GUIDANCE_TOPS)
    out: list[BandUse] = []
    below: float | None = None
    for top, seconds in zip(GUIDANCE_TOPS, used, strict=True):
        first = 0 if below is None else bucket_of(below) + 1
        last = len(per_bucket) - 1 if math.isinf(top) else bucket_of(top)
        allowed = min(per_bucket[first : last + 1])
        out.append(
            BandUse(band_label(top, below), None if math.isinf(top) else top, seconds, allowed)
        )
        below = top
    return out


def bands_text(bands: Sequence[BandUse]) -> str:
    """``<= 2400 ppm 0:27 / 5:00, > 2400 ppm 0:00 / 2:00``."""
    return ", ".join(f"{b.label} {b.text()}" for b in bands)
