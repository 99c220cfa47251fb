"""Built-in ceilings from the clinical guidance. A config may only tighten these.

Source: the guidance in ``shared/seeds`` ("How to use a massage gun for Achilles
tendonitis"): at most 5 minutes per muscle group at 2400 percussions per minute or
lower (at least 2 to have an effect), under 2 minutes above 2400, at least 48 hours
between treatments, no new scar (< 12 weeks), normal sensation required.
Values without a number in the guidance (force, loop timing) are engineering bounds,
each marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ceiling:
    """A bound the config cannot loosen, with the words a config error quotes."""

    name: str
    value: float
    unit: str
    source: str

    def describe(self) -> str:
        return f"built-in ceiling '{self.name}' ({self.value:g} {self.unit}, {self.source})"


GUIDANCE = "from the clinical guidance"
ENGINEERING = "engineering bound"

LOW_HIGH_BOUNDARY_PPM = 2400.0
LOW_BAND_MAX_MINUTES = Ceiling("time per muscle group at <= 2400 ppm", 5.0, "min", GUIDANCE)
HIGH_BAND_MAX_MINUTES = Ceiling("time per muscle group above 2400 ppm", 2.0, "min", GUIDANCE)
LOW_BAND_MIN_MINUTES = 2.0  # under this at <= 2400 ppm is reported as under-dosed
REST_HOURS = Ceiling("rest between treatments of one area", 48.0, "h (minimum)", GUIDANCE)
SCAR_MIN_AGE_DAYS = 12 * 7  # a scar younger than 12 weeks is refused (guidance)
TREATMENT_GAP_MINUTES = Ceiling("gap that ends a treatment", 30.0, "min (minimum)", ENGINEERING)
HARDWARE_MAX_PPM = Ceiling("fastest percussion rate of any gun", 3600.0, "ppm", ENGINEERING)
OVERSPEED_TOLERANCE = Ceiling("overspeed tolerance", 0.05, "(fraction)", ENGINEERING)
MAX_FORCE_N = Ceiling("head force", 200.0, "N", ENGINEERING)
CONTACT_FORCE_N = Ceiling("force that counts as contact", 10.0, "N", ENGINEERING)
NO_TACH_CONTACT_S = Ceiling("contact without percussion", 3.0, "s", ENGINEERING)
FORCE_DEBOUNCE_MS = Ceiling("overforce debounce", 200.0, "ms", ENGINEERING)
FORCE_FROZEN_S = Ceiling("unchanged force reading while percussing", 2.0, "s", ENGINEERING)
MAX_LOOP_GAP_MS = Ceiling("longest gap between loop ticks", 100.0, "ms", ENGINEERING)
MIN_LOOP_RATE_HZ = Ceiling("slowest control loop", 200.0, "Hz (minimum)", ENGINEERING)
#: The guidance's allowance by rate, in seconds: what every rate bucket is held to,
#: whatever bands a config lists (gunguard.core.dose).
BUILT_IN_BANDS: tuple[tuple[float, float], ...] = (
    (LOW_HIGH_BOUNDARY_PPM, LOW_BAND_MAX_MINUTES.value * 60.0),
    (float("inf"), HIGH_BAND_MAX_MINUTES.value * 60.0),
)
#: The hazard a late loop adds to: force is judged once a tick, so a press over the
#: region's limit loses power within ``force_debounce_ms`` plus the longest tick gap
#: the loop may have without tripping (docs/config.md, "Why 100 ms"). The budget is the
#: overforce reaction the ceilings already accept: the longest debounce a file may set.
OVERFORCE_REACTION_BUDGET_MS = FORCE_DEBOUNCE_MS.value
DEFAULT_FORCE_DEBOUNCE_MS = 100.0
#: ``loop.max_loop_gap_ms`` by default: what the budget leaves after the debounce.
DEFAULT_MAX_LOOP_GAP_MS = OVERFORCE_REACTION_BUDGET_MS - DEFAULT_FORCE_DEBOUNCE_MS
POWER_SWITCH_CHECK_S = 1.0  # tach still pulsing this long after a cut: the switch failed
DOSE_WARNING = 0.9  # fraction of the dose at which the user is warned
