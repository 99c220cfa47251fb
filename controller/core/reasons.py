"""Every reason code gunguard announces: the ``reason`` of a trip, a refusal or a warning.

The one place they are defined (docs/safety.md and docs/scenarios.md list them). They
are :class:`~enum.StrEnum` members, so they compare equal to, print as and serialise
as their plain strings (``TripReason.OVERSPEED == "overspeed"``).
"""

from __future__ import annotations

from enum import StrEnum


class TripReason(StrEnum):
    """Why power was cut and latched off (the ``reason`` of a ``trip`` event)."""

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
    #: The firmware reports its motor on while gunguard's power has been off beyond a
    #: grace: a welded switch, or a firmware that lies (docs/serial-protocol.md, §8.6).
    POWER_STATE_MISMATCH = "power_state_mismatch"

    @property
    def critical(self) -> bool:
        """The hardware itself may be unsafe: logged as critical."""
        return self in (TripReason.POWER_SWITCH_FAULT, TripReason.INTERNAL_ERROR)


class RefusalReason(StrEnum):
    """Why a region cannot be armed (the ``reason`` of a ``refused`` event)."""

    UNKNOWN_REGION = "unknown_region"
    NEVER_ALLOWED = "never_allowed"
    NOT_ALLOWED = "not_allowed"
    CONTRAINDICATION = "contraindication"
    WOUND = "wound"
    NEW_SCAR = "new_scar"
    TRIP_LATCHED = "trip_latched"
    REGION_DOSE = "region_dose"
    FORCE_SENSOR_FAULT = "force_sensor_fault"
    OVER_LIMIT = "over_limit"  # the last 0.25 s of rate or 1 s of force is over the region's
    REST_INTERVAL = "rest_interval"
    CLOCK_UNTRUSTED = "clock_untrusted"
    STORAGE_FAULT = "storage_fault"
    WRONG_ATTACHMENT = "wrong_attachment"
    LINK_LOST = "link_lost"
    INTERNAL_ERROR = "internal_error"


class WarningReason(StrEnum):
    """Something the person should know while power stays on (a ``warning`` event)."""

    DOSE_NEAR_LIMIT = "dose_near_limit"
    LINK_LOST = "link_lost"
    NEAR_ARTERY = "near_artery"  # the armed region lies next to a never-allowed artery region


TRIP_REASONS = frozenset(TripReason)
REFUSAL_REASONS = frozenset(RefusalReason)
WARNING_REASONS = frozenset(WarningReason)
