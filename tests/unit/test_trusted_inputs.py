"""check-config's trusted inputs: each calibration key, its value, and when it was last
calibrated (from the included calibration file) or that it never was."""

from __future__ import annotations

import datetime as dt

from gunguard.config import loader as configfile
from gunguard.config.trusted import trusted_input_lines
from tests.unit.test_calibration_file import AT, INCLUDES, cal_text, write

NOW = AT + dt.timedelta(days=3)


def test_trusted_inputs_without_a_calibration_file(tmp_path):
    path = write(tmp_path, "hardware:\n  force_sensor: {zero: 0.06}\n")
    lines = trusted_input_lines(configfile.load(str(path)), path, now=NOW)
    assert lines[0].startswith("trusted inputs (every limit depends on them")
    assert lines[1:4] == [
        "  hardware.force_sensor.zero = 0.06: never calibrated: the config's own value",
        "  hardware.force_sensor.newtons_per_unit = 300: never calibrated: the built-in default",
        "  hardware.tachometer.pulses_per_percussion = 1: never calibrated: the built-in default",
    ]
    assert "gunguard calibrate" in lines[4] and "hardware.calibration" in lines[4]


def test_trusted_inputs_say_when_each_was_calibrated(tmp_path):
    path = write(tmp_path, INCLUDES, cal_text(zero=0.0512, newtons_per_unit=287.4))
    lines = trusted_input_lines(configfile.load(str(path)), path, now=NOW)
    assert lines[1:] == [
        "  hardware.force_sensor.zero = 0.0512: calibrated 2026-11-20T08:00:00Z (3 days ago), "
        "cal.yaml: zero measured",
        "  hardware.force_sensor.newtons_per_unit = 287.4: calibrated 2026-11-20T08:00:00Z "
        "(3 days ago), cal.yaml: newtons_per_unit measured",
        "  hardware.tachometer.pulses_per_percussion = 1: never calibrated: the built-in default",
    ]
