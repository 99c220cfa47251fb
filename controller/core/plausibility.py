"""Is a force reading believable? The one force-plausibility rule.

A raw ADC reading outside ``valid_min..valid_max`` is a sensor that is open or
shorted, not a small or a huge force; a calibrated force more than
:data:`~gunguard.core.limits.NEGATIVE_FORCE_N` below zero is a wrong ``zero`` or
``newtons_per_unit`` (or a broken sensor), not a pull: with it a firm press would read
as no contact, no dose and no overforce. The supervisor applies this rule every tick
and before arming a region; nothing else judges force readings.
"""

from __future__ import annotations

from gunguard.core.limits import NEGATIVE_FORCE_N, Limits


def force_fault(raw: float, newtons: float, limits: Limits) -> str | None:
    """Why the force reading ``raw`` (0..1; ``newtons`` calibrated) cannot be believed."""
    if raw < limits.force_valid_min:
        return f"raw {raw:.4f} below valid_min {limits.force_valid_min:g}: sensor open"
    if raw > limits.force_valid_max:
        return f"raw {raw:.4f} above valid_max {limits.force_valid_max:g}: sensor shorted"
    if newtons < -NEGATIVE_FORCE_N:
        return (
            f"reads {newtons:.1f} N (raw {raw:.4f}): a press cannot be negative; check the "
            "calibration (hardware.force_sensor.zero, newtons_per_unit: gunguard calibrate)"
        )
    return None
