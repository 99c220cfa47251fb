"""May this region be treated at all? The screening and region rules, as pure functions.

Checked when a region is selected (and again when the config is reloaded). Dose, rest
and attachment checks live with the components that know them (supervisor, ledger,
serial link) and plug in beside this one.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass

from gunguard.core import ceilings as C
from gunguard.core import regions as R
from gunguard.core.limits import Limits
from gunguard.core.reasons import RefusalReason as Why

#: The systemic illnesses the guidance names (seed 001: "if you have a systemic illness
#: or condition, for example diabetes, osteoporosis, iron deficiency, or a kidney
#: disease"). Examples, not a closed list: any entry in ``screening.conditions`` refuses
#: every region, and a name not listed here gets a warning (a typo, or "none").
KNOWN_CONDITIONS = ("diabetes", "osteoporosis", "iron_deficiency", "kidney_disease")
#: Entries people write to mean "no condition"; listed, they would refuse everything.
NONE_LIKE = frozenset({"", "none", "no", "n/a", "na", "nil", "null", "-", "false"})


def condition_warning(entry: str) -> str | None:
    """Why ``entry`` in ``screening.conditions`` is probably not what was meant, or None."""
    name = entry.strip().lower()
    known = ", ".join(KNOWN_CONDITIONS)
    if name in NONE_LIKE:
        return (
            f"{entry!r} is not a condition: any entry refuses every region; for no condition "
            f"write `conditions: []` (known conditions: {known})"
        )
    if name in KNOWN_CONDITIONS:
        return None
    close = difflib.get_close_matches(name, KNOWN_CONDITIONS, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    return (
        f"unknown condition {entry!r}: {hint}it still refuses every region, as any listed "
        f"condition does (known conditions: {known})"
    )


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
