"""Trip reason codes: the ``reason`` of a ``trip`` event, exactly as documented."""

from __future__ import annotations

OVERSPEED = "overspeed"
TACH_IMPLAUSIBLE = "tach_implausible"
REGION_DOSE = "region_dose"
OVERFORCE = "overforce"
FORCE_SENSOR_FAULT = "force_sensor_fault"
TACH_STALL = "tach_stall"
POWER_SWITCH_FAULT = "power_switch_fault"
LOOP_OVERRUN = "loop_overrun"
INTERNAL_ERROR = "internal_error"  # an exception inside the supervisor
STORAGE_FAULT = "storage_fault"
LINK_LOST = "link_lost"
SPEED_MISMATCH = "speed_mismatch"

#: Trips that mean the hardware itself may be unsafe: logged as critical.
CRITICAL = frozenset({POWER_SWITCH_FAULT, INTERNAL_ERROR})

# Warnings (the ``reason`` of a ``warning`` event).
DOSE_NEAR_LIMIT = "dose_near_limit"

#: Every trip reason (scenario expectations are checked against this, so a typo in
#: ``no_trip:`` cannot pass silently).
TRIP_REASONS = frozenset(
    {
        OVERSPEED,
        TACH_IMPLAUSIBLE,
        REGION_DOSE,
        OVERFORCE,
        FORCE_SENSOR_FAULT,
        TACH_STALL,
        POWER_SWITCH_FAULT,
        LOOP_OVERRUN,
        INTERNAL_ERROR,
        STORAGE_FAULT,
        LINK_LOST,
        SPEED_MISMATCH,
    }
)
#: Every refusal reason (the ``reason`` of a ``refused`` event).
REFUSAL_REASONS = frozenset(
    {
        "unknown_region",
        "never_allowed",
        "not_allowed",
        "contraindication",
        "wound",
        "new_scar",
        "trip_latched",
        "region_dose",
        "force_sensor_fault",
        "rest_interval",
        "clock_untrusted",
        "storage_fault",
        "wrong_attachment",
        "link_lost",
        INTERNAL_ERROR,
    }
)
WARNING_REASONS = frozenset({DOSE_NEAR_LIMIT, LINK_LOST})
