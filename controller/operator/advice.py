"""What the person can do about each trip: one table for the dashboard and the CLI.

A trip banner that only says "remove the cause" leaves the person guessing; each
reason here says what happened in plain words and the next step. ``region_dose`` and
the switch faults deliberately do not suggest selecting the region again.
"""

from __future__ import annotations

from gunguard.core.reasons import TripReason as T

#: Reset: ``gunguard reset``, ``r`` in the dashboard or a long press of the button.
ADVICE: dict[T, str] = {
    T.OVERSPEED: "The gun ran faster than this region's cap. Turn the speed down, then "
    "reset and select the region again.",
    T.TACH_IMPLAUSIBLE: "The tachometer reported pulses no motor makes (noise or a loose "
    "wire). Check its wiring and keep it away from the motor leads, then reset.",
    T.REGION_DOSE: "This region has had its whole time for this treatment. Stop here: "
    "`gunguard history` shows when it may be treated again. Reset to treat another region.",
    T.OVERFORCE: "You pressed harder than this region allows. Use slight to moderate "
    "pressure, then reset and select the region again.",
    T.FORCE_SENSOR_FAULT: "The force sensor reads open, shorted or frozen. Check its "
    "cable and connector (docs/config.md, force calibration), then reset.",
    T.TACH_STALL: "The head was in contact with power on but the motor did not turn: it "
    "stalled (pressed too hard) or the tachometer is lost. Lift the gun, check the "
    "tachometer, then reset.",
    T.POWER_SWITCH_FAULT: "The motor kept running after its power was cut: the MOSFET or "
    "relay may be shorted. Unplug the gun's battery now and have the switch checked.",
    T.LOOP_OVERRUN: "gunguard's control loop was held up (the computer was too busy). "
    "Close heavy programs, then reset and select the region again; if it repeats, see "
    "the README's troubleshooting.",
    T.INTERNAL_ERROR: "gunguard hit an internal error (its log has the details: "
    "journalctl -u gunguard). Reset to try again; report it if it repeats.",
    T.STORAGE_FAULT: "The treatment history could not be written (disk full, file locked "
    "or damaged). Fix the store (docs/history.md), then reset.",
    T.LINK_LOST: "The link to the gun's firmware is down. Check the serial cable and the "
    "gun's power, then reset.",
    T.SPEED_MISMATCH: "The gun's firmware and gunguard's tachometer disagree on the rate. "
    "Check the tachometer and pulses_per_percussion, then reset.",
    T.POWER_STATE_MISMATCH: "The gun's firmware says its motor runs while gunguard has cut "
    "the power. Unplug the gun's battery and have the power switch checked.",
}


def advice(reason: str) -> str:
    """The advice for a trip ``reason`` (an unknown one from a newer daemon: generic)."""
    try:
        return ADVICE[T(reason)]
    except ValueError:
        return "Find and remove the cause, then reset."
