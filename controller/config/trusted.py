"""The trusted inputs, as ``gunguard check-config`` lists them.

Every force and rate limit is judged through three calibration values; gunguard can
catch a gross error in them while running (a press reading below -5 N, a measured rate
at a simple ratio of the firmware's) but cannot prove them right. So check-config
names them, with where each value comes from and when it was last calibrated: a
config that looks valid is only as right as these numbers (docs/config.md,
'Calibration').

Its own block of lines, separate from the rest of the summary.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gunguard.config import calibration
from gunguard.config.loader import ConfigError, calibration_path, format_path, read_calibration
from gunguard.config.schema import GunguardConfig

HEADING = "trusted inputs (every limit depends on them; gunguard checks only plausibility):"


def _age(at: dt.datetime, now: dt.datetime) -> str:
    days = (now - at).total_seconds() / 86400.0
    if days < 0:
        return "in the future: check the clock"
    if days < 1:
        return "today"
    return f"{days:.0f} day{'s' if round(days) != 1 else ''} ago"


def trusted_input_lines(
    cfg: GunguardConfig, config_path: Path, *, now: dt.datetime | None = None
) -> list[str]:
    """The block: each calibration key, its value, and when (or that it never was) calibrated.

    ``cfg`` is the loaded config (its calibration file already merged and validated by
    :func:`gunguard.config.loader.load`); ``config_path`` the file it came from.
    """
    now = now or dt.datetime.now(dt.UTC)
    path = calibration_path(cfg, config_path)
    cal = None
    if path is not None:
        try:
            cal, _ = read_calibration(path)
        except ConfigError:
            cal = None  # (load() refuses such a config before this is asked)
    hw = cfg.hardware
    sections = {"force_sensor": hw.force_sensor, "tachometer": hw.tachometer}
    lines = [HEADING]
    for key, target in calibration.KEYS.items():
        value = getattr(sections[target[1]], target[2])
        record = cal.record(key) if cal is not None and key in cal.values() else None
        if record is not None:
            assert path is not None
            where = (
                f"calibrated {calibration.iso(record.at)} ({_age(record.at, now)}), "
                f"{path.name}: {record.how}"
            )
        elif target[2] in sections[target[1]].model_fields_set:
            where = "never calibrated: the config's own value"
        else:
            where = "never calibrated: the built-in default"
        lines.append(f"  {format_path(target)} = {value:g}: {where}")
    if path is None:
        lines.append(
            "  no calibration file: write one with `gunguard calibrate --output FILE` and "
            "include it as hardware.calibration (docs/config.md#calibration)"
        )
    return lines
