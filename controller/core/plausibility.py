"""Is a sensor reading believable? The one force-plausibility rule.

A raw ADC reading outside ``valid_min..valid_max`` is a sensor that is open or
shorted, not a small or a huge force. The supervisor applies this rule every tick
and before arming a region; nothing else judges force readings.
"""

from __future__ import annotations

from gunguard.core.limits import Limits


def force_fault(raw: float, limits: Limits) -> str | None:
    """Why the force reading ``raw`` (0..1) cannot be believed, or None when it can."""
    if raw < limits.force_valid_min:
        return f"raw {raw:.4f} below valid_min {limits.force_valid_min:g}: sensor open"
    if raw > limits.force_valid_max:
        return f"raw {raw:.4f} above valid_max {limits.force_valid_max:g}: sensor shorted"
    return None
