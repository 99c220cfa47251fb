"""May this region be treated at all? The screening and region rules, as pure functions.

Checked when a region is selected (and again when the config is reloaded). Dose, rest
and attachment checks live with the components that know them (supervisor, ledger,
serial link) and plug in beside this one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from controller import ceilings as C
from controller import regions as R
from controller.config import ScreeningConfig
from controller.limits import Limits

# Refusal reasons (the ``reason`` of a ``refused`` event).
UNKNOWN_REGION = "unknown_region"
NEVER_ALLOWED = "never_allowed"
NOT_ALLOWED = "not_allowed"
CONTRAINDICATION = "contraindication"
WOUND = "wound"
NEW_SCAR = "new_scar"
TRIP_LATCHED = "trip_latched"
REGION_DOSE = "region_dose"
FORCE_SENSOR_FAULT = "force_sensor_fault"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a region cannot be armed; ``until`` (wall time) when it will be allowed."""

    reason: str
    region: str
    detail: str
    until: float | None = None


def screen(
    region: str, limits: Limits, screening: ScreeningConfig, today: dt.date
) -> Refusal | None:
    """The first rule that refuses ``region``, or None when it may be treated."""
    if region in R.NEVER_ALLOWED:
        return Refusal(NEVER_ALLOWED, region, f"{region} is never treated with a massage gun")
    if screening.conditions:
        listed = ", ".join(screening.conditions)
        return Refusal(
            CONTRAINDICATION,
            region,
            f"systemic condition ({listed}): no massage gun use at all",
        )
    if not screening.normal_sensation:
        return Refusal(
            CONTRAINDICATION, region, "no normal sensation: you could not feel harm being done"
        )
    region_limits = limits.regions.get(region)
    if region_limits is None:
        return Refusal(
            UNKNOWN_REGION,
            region,
            f"{region} is not listed in the config's regions"
            if region in R.ALL_REGIONS
            else R.describe_unknown(region),
        )
    if not region_limits.allowed:
        return Refusal(NOT_ALLOWED, region, region_limits.note or "not allowed by the config")
    if region == R.CHEST and not screening.muscular_chest:
        return Refusal(
            CONTRAINDICATION, region, "chest only with a muscular chest (screening.muscular_chest)"
        )
    if region in R.HEEL_REGIONS and screening.heel_bursitis:
        return Refusal(CONTRAINDICATION, region, "never on the heel insertion with heel bursitis")
    if region in screening.wounds:
        return Refusal(WOUND, region, "open wound or inflammation listed in screening.wounds")
    for scar in screening.scars:
        age = (today - scar.since).days
        if scar.region == region and age < C.SCAR_MIN_AGE_DAYS:
            allowed_on = scar.since + dt.timedelta(days=C.SCAR_MIN_AGE_DAYS)
            return Refusal(
                NEW_SCAR,
                region,
                f"scar from {scar.since} is {age} days old; allowed from {allowed_on}",
            )
    return None
