"""Effective limits: the config resolved into plain numbers the control loop reads.

Built once per config (and again on reload), so the hot path never walks pydantic
models, never looks up defaults and never divides by minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.config import GunguardConfig, region_cap_ppm

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
class Limits:
    """Every number the supervisor judges against."""

    hardware_max_ppm: float
    pulses_per_percussion: int
    min_pulse_interval_s: float  # shorter than any motor can make: noise
    stopped_after_s: float  # no edge for this long: not percussing
    contact_force_n: float
    no_tach_contact_s: float
    force_debounce_s: float
    force_frozen_s: float
    max_loop_gap_s: float
    tick_s: float
    rest_hours: float
    treatment_gap_s: float
    regions: dict[str, RegionLimits]

    @classmethod
    def from_config(cls, cfg: GunguardConfig) -> Limits:
        lim = cfg.limits
        ppp = cfg.hardware.tachometer.pulses_per_percussion
        shortest_real_interval = 60.0 / (lim.hardware_max_ppm * ppp)
        regions = {}
        for name, region in cfg.regions.items():
            cap = region_cap_ppm(cfg, name)
            bands = region.bands or lim.bands
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
            )
        return cls(
            hardware_max_ppm=lim.hardware_max_ppm,
            pulses_per_percussion=ppp,
            min_pulse_interval_s=shortest_real_interval / 2.0,
            stopped_after_s=60.0 / (MIN_PERCUSSION_PPM * ppp),
            contact_force_n=lim.contact_force_n,
            no_tach_contact_s=lim.no_tach_contact_s,
            force_debounce_s=lim.force_debounce_ms / 1000.0,
            force_frozen_s=lim.force_frozen_s,
            max_loop_gap_s=cfg.loop.max_loop_gap_ms / 1000.0,
            tick_s=1.0 / cfg.loop.rate_hz,
            rest_hours=lim.rest_hours,
            treatment_gap_s=lim.treatment_gap_minutes * 60.0,
            regions=regions,
        )
