"""Does a plan fit a config? A plan may only tighten what the config allows.

Every step's region must arm under the config (the supervisor's own screening, with
today's date for scars); its rate band must lie within the region's cap; a routine
must give a region less than one treatment's allowance anywhere in the rate bands it
names (the config's bands within the built-in ceilings: 5 minutes at up to 2400 ppm, 2
above; a band is judged at its tightest rate);
and the plan's rest between sessions must be at least the config's ``rest_hours``.
The problems name the plan file, its line and key, and the config's value.
"""

from __future__ import annotations

import datetime as dt

from gunguard.config.loader import LocatedProblem
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core.admission import screen
from gunguard.core.ceilings import DOSE_WARNING
from gunguard.core.dose import DOSE_FULL, bucket_of
from gunguard.plan.files import LoadedPlan
from gunguard.plan.schema import EntryRule


def check_plan(
    loaded: LoadedPlan, cfg: GunguardConfig, config_name: str, today: dt.date
) -> tuple[list[LocatedProblem], list[LocatedProblem]]:
    """(problems, warnings) of ``loaded`` under ``cfg`` (called ``config_name`` in the
    messages). A plan with a problem must not be used; a warning is worth reading."""
    limits = resolve_limits(cfg)
    plan = loaded.plan
    problems: list[LocatedProblem] = []
    warnings: list[LocatedProblem] = []

    def at(
        into: list[LocatedProblem], path: tuple[str | int, ...], value: object, why: str
    ) -> None:
        into.append(LocatedProblem(loaded.source, loaded.line_of(path), path, value, why))

    if plan.rest_hours < limits.rest_hours:
        at(
            problems,
            ("rest_hours",),
            plan.rest_hours,
            f"less than the config's rest_hours ({limits.rest_hours:g} h in {config_name}): "
            "a plan may only tighten the config",
        )
    for i, phase in enumerate(plan.phases):
        doses: dict[str, float] = {}
        for j, step in enumerate(phase.routine):
            where: tuple[str | int, ...] = ("phases", i, "routine", j)
            refusal = screen(step.region, limits, today)
            if refusal is not None:
                at(
                    problems,
                    (*where, "region"),
                    step.region,
                    f"cannot be armed under {config_name}: {refusal.reason}: {refusal.detail}",
                )
                continue
            region = limits.regions[step.region]
            if step.rate_ppm[1] > region.cap_ppm:
                at(
                    problems,
                    (*where, "rate_ppm"),
                    list(step.rate_ppm),
                    f"above {step.region}'s cap of {region.cap_ppm:g} ppm in {config_name}: "
                    "a plan may only tighten the config",
                )
                continue
            # judged where the band allows least: a config may allow less time at a
            # low rate than at a high one, and the person may run anywhere in the band
            low, high = bucket_of(step.rate_ppm[0]), bucket_of(step.rate_ppm[1])
            allowed_s = min(region.allowance[low : high + 1])
            doses[step.region] = doses.get(step.region, 0.0) + step.target_s / allowed_s
        for region_name, dose in doses.items():
            minutes = sum(s.minutes for s in phase.routine if s.region == region_name)
            first = next(j for j, s in enumerate(phase.routine) if s.region == region_name)
            path = ("phases", i, "routine", first, "minutes")
            text = (
                f"phase {phase.name} gives {region_name} {minutes:g} min at the rates it names: "
                f"{dose:.0%} of one treatment's allowance in {config_name}"
            )
            if dose > DOSE_FULL:
                at(
                    problems,
                    path,
                    minutes,
                    f"{text}; a routine must give less than 100 % (a whole allowance trips "
                    "region_dose as its last target is reached)",
                )
            elif dose >= DOSE_WARNING:
                at(
                    warnings,
                    path,
                    minutes,
                    f"{text}: the dose warning ({DOSE_WARNING:.0%}) comes before the last "
                    "target, and a little more trips region_dose",
                )
    return problems, warnings


def summary_lines(loaded: LoadedPlan, config_name: str) -> list[str]:
    """What a valid plan prescribes, for ``gunguard plan check``."""
    plan = loaded.plan
    lines = [
        f"{loaded.source}: valid under {config_name}; patient {plan.patient}, from "
        f"{plan.start_date.isoformat()}, at least {plan.rest_hours:g} h between sessions",
    ]
    for n, phase in enumerate(plan.phases, start=1):
        lines.append(f"  phase {n} {phase.name}: {entry_text(phase.entry)}")
        for k, step in enumerate(phase.routine, start=1):
            low, high = step.rate_ppm
            what = f"{step.region:<14} {step.minutes:g} min at {low:g}-{high:g} ppm"
            lines.append(f"    {k}. {what}: {step.cue}")
    lines.append(f"plan hash {loaded.hash}")
    return lines


def entry_text(entry: EntryRule | None) -> str:
    """An entry rule in words."""
    if entry is None:
        return "from the start"
    parts = []
    if entry.from_week is not None:
        parts.append(f"from week {entry.from_week}")
    if entry.min_sessions is not None:
        parts.append(f"after {entry.min_sessions} treated session(s) in the phase before")
    morning = entry.morning_pain
    if morning is not None:
        parts.append(f"the last {morning.last} next-morning pain scores <= {morning.at_most}/10")
    return ", ".join(parts) + ", unless progression is held"
