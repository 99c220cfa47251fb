"""A validated config resolved into the core's plain :class:`~gunguard.core.limits.Limits`."""

from __future__ import annotations

from gunguard.config.schema import GunguardConfig, hardware_max_ppm, region_cap_ppm
from gunguard.core.ceilings import BUILT_IN_BANDS
from gunguard.core.dose import allowance_for
from gunguard.core.limits import (
    CONTACT_RELEASE_FRACTION,
    MIN_PERCUSSION_PPM,
    BandLimit,
    Limits,
    RegionLimits,
    Scar,
    Screening,
)


def resolve_limits(cfg: GunguardConfig) -> Limits:
    """Every number the supervisor judges against, from ``cfg`` (already validated)."""
    lim = cfg.limits
    ppp = cfg.hardware.tachometer.pulses_per_percussion
    force = cfg.hardware.force_sensor
    fastest = hardware_max_ppm(cfg)
    shortest_real_interval = 60.0 / (fastest * ppp)
    regions = {}
    for name, region in cfg.regions.items():
        cap = region_cap_ppm(cfg, name)
        bands = region.bands or lim.bands
        table = [(b.up_to_ppm, b.max_minutes * 60.0) for b in bands]
        regions[name] = RegionLimits(
            name=name,
            allowed=region.allowed,
            cap_ppm=cap,
            trip_ppm=cap * (1.0 + lim.overspeed_tolerance),
            max_force_n=region.max_force_n or lim.max_force_n,
            bands=tuple(
                BandLimit(
                    b.up_to_ppm,
                    b.max_minutes * 60.0,
                    None if b.min_minutes is None else b.min_minutes * 60.0,
                )
                for b in bands
            ),
            attachment=region.attachment,
            note=region.note,
            allowance=allowance_for(table, BUILT_IN_BANDS),
        )
    sc = cfg.screening
    return Limits(
        hardware_max_ppm=fastest,
        pulses_per_percussion=ppp,
        min_pulse_interval_s=shortest_real_interval / 2.0,
        stopped_after_s=60.0 / (MIN_PERCUSSION_PPM * ppp),
        contact_force_n=lim.contact_force_n,
        no_tach_contact_s=lim.no_tach_contact_s,
        force_debounce_s=lim.force_debounce_ms / 1000.0,
        force_frozen_s=lim.force_frozen_s,
        max_force_n=lim.max_force_n,
        force_valid_min=force.valid_min,
        force_valid_max=force.valid_max,
        contact_release_n=lim.contact_force_n * CONTACT_RELEASE_FRACTION,
        max_loop_gap_s=cfg.loop.max_loop_gap_ms / 1000.0,
        tick_s=1.0 / cfg.loop.rate_hz,
        rest_hours=lim.rest_hours,
        treatment_gap_s=lim.treatment_gap_minutes * 60.0,
        regions=regions,
        screening=Screening(
            conditions=sc.conditions,
            normal_sensation=sc.normal_sensation,
            heel_bursitis=sc.heel_bursitis,
            muscular_chest=sc.muscular_chest,
            wounds=sc.wounds,
            scars=tuple(Scar(s.region, s.since) for s in sc.scars),
        ),
    )
