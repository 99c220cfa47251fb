"""May this region be treated at all? The screening and region rules, as pure functions.

Checked when a region is selected (and again when the config is reloaded). Dose, rest
and attachment checks live with the components that know them (supervisor, ledger,
serial link) and plug in beside this one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gunguard.core import ceilings as C
from gunguard.core import regions as R
from gunguard.core.limits import Limits
from gunguard.core.reasons import RefusalReason as Why


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a region cannot be armed; ``until`` (wall time) when it will be allowed."""

    reason: Why
    region: str
    detail: str
    until: float | None = None


def screen(region: str, limits: Limits, today: dt.date) -> Refusal | None:
    """The first rule that refuses ``region``, or None when it may be treated."""
    screening = limits.screening
    if region in R.NEVER_ALLOWED:
        artery = R.ARTERY_REGIONS.get(region)
        where = f": it lies over a major artery ({artery})" if artery else ""
        return Refusal(
            Why.NEVER_ALLOWED, region, f"{region} is never treated with a massage gun{where}"
        )
    if screening.conditions:
        listed = ", ".join(screening.conditions)
        return Refusal(
            Why.CONTRAINDICATION,
            region,
            f"systemic condition ({listed}): no massage gun use at all",
        )
    if not screening.normal_sensation:
        return Refusal(
            Why.CONTRAINDICATION, region, "no normal sensation: you could not feel harm being done"
        )
    region_limits = limits.regions.get(region)
    if region_limits is None:
        return Refusal(
            Why.UNKNOWN_REGION,
            region,
            f"{region} is not listed in the config's regions"
            if region in R.ALL_REGIONS
            else R.describe_unknown(region),
        )
    if not region_limits.allowed:
        return Refusal(Why.NOT_ALLOWED, region, region_limits.note or "not allowed by the config")
    if region == R.CHEST and not screening.muscular_chest:
        return Refusal(
            Why.CONTRAINDICATION,
            region,
            "chest only with a muscular chest (screening.muscular_chest)",
        )
    if region in R.HEEL_REGIONS and screening.heel_bursitis:
        return Refusal(
            Why.CONTRAINDICATION, region, "never on the heel insertion with heel bursitis"
        )
    if region in screening.wounds:
        return Refusal(Why.WOUND, region, "open wound or inflammation listed in screening.wounds")
    for scar in screening.scars:
        age = (today - scar.since).days
        if scar.region == region and age < C.SCAR_MIN_AGE_DAYS:
            allowed_on = scar.since + dt.timedelta(days=C.SCAR_MIN_AGE_DAYS)
            return Refusal(
                Why.NEW_SCAR,
                region,
                f"scar from {scar.since} is {age} days old; allowed from {allowed_on}",
            )
    return None
