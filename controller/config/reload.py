"""Config reload (SIGHUP): tighter limits at once, looser ones only with no treatment armed.

:func:`compare` decides what a new, already validated, config would do. Anything it
cannot prove to be at least as strict counts as looser. Hardware, storage, serial and
socket settings cannot change under a running loop: those need a restart, and a reload
that asks for one keeps the running config.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core.limits import BandLimit, Limits

SAME, TIGHTER, LOOSER, RESTART = "same", "tighter", "looser", "restart"


@dataclass(frozen=True)
class ReloadPlan:
    kind: str
    reasons: list[str] = field(default_factory=list)


def _band_seconds_at(bands: tuple[BandLimit, ...], ppm: float) -> float:
    for band in bands:
        if ppm <= band.up_to_ppm:
            return band.max_seconds
    return 0.0  # above every band: no time at all


def _looser_limits(old: Limits, new: Limits) -> Iterator[str]:
    higher_is_looser = (
        "hardware_max_ppm",
        "contact_force_n",
        "no_tach_contact_s",
        "force_debounce_s",
        "force_frozen_s",
        "max_loop_gap_s",
        "tick_s",
    )
    for name in higher_is_looser:
        if getattr(new, name) > getattr(old, name):
            yield f"limits: {name} {getattr(old, name):g} -> {getattr(new, name):g}"
    for name in ("rest_hours", "treatment_gap_s"):
        if getattr(new, name) < getattr(old, name):
            yield f"limits: {name} {getattr(old, name):g} -> {getattr(new, name):g}"
    for name, region in new.regions.items():
        if not region.allowed:
            continue  # cannot be armed: its caps do not matter (forbidding one is tighter)
        before = old.regions.get(name)
        if before is None or (region.allowed and not before.allowed):
            if region.allowed:
                yield f"regions.{name}: newly allowed"
            continue
        for attr in ("cap_ppm", "trip_ppm", "max_force_n"):
            if getattr(region, attr) > getattr(before, attr):
                was, now = getattr(before, attr), getattr(region, attr)
                yield f"regions.{name}.{attr} {was:g} -> {now:g}"
        points = {b.up_to_ppm for b in region.bands} | {b.up_to_ppm for b in before.bands}
        for ppm in sorted(points):
            if _band_seconds_at(region.bands, ppm) > _band_seconds_at(before.bands, ppm):
                yield f"regions.{name}: more time allowed at {ppm:g} ppm"
                break


def _looser_screening(old: GunguardConfig, new: GunguardConfig) -> Iterator[str]:
    a, b = old.screening, new.screening
    if set(a.conditions) - set(b.conditions):
        yield "screening.conditions: a condition was removed"
    if b.normal_sensation and not a.normal_sensation:
        yield "screening.normal_sensation: false -> true"
    if a.heel_bursitis and not b.heel_bursitis:
        yield "screening.heel_bursitis: true -> false"
    if b.muscular_chest and not a.muscular_chest:
        yield "screening.muscular_chest: false -> true"
    if set(a.wounds) - set(b.wounds):
        yield "screening.wounds: a wound was removed"
    if {(s.region, s.since) for s in a.scars} - {(s.region, s.since) for s in b.scars}:
        yield "screening.scars: a scar was removed or made older"


def compare(old: GunguardConfig, new: GunguardConfig) -> ReloadPlan:
    """What reloading ``new`` over ``old`` would mean."""
    if old == new:
        return ReloadPlan(SAME)
    fixed = [
        name
        for name in ("hardware", "storage", "serial", "control_socket", "realtime", "controls")
        if getattr(old, name) != getattr(new, name)
    ]
    if fixed:
        return ReloadPlan(RESTART, [f"{name} changed: needs a restart" for name in fixed])
    looser = [
        *_looser_limits(resolve_limits(old), resolve_limits(new)),
        *_looser_screening(old, new),
    ]
    return ReloadPlan(LOOSER, looser) if looser else ReloadPlan(TIGHTER)
