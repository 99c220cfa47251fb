"""The calibration file: what ``gunguard calibrate`` measured, included by a config.

A config names it with ``hardware.calibration: PATH`` (relative to the config file).
Its ``zero``, ``newtons_per_unit`` and ``pulses_per_percussion`` override the config's
own ``hardware.force_sensor`` / ``hardware.tachometer`` values and are then validated
by exactly the same rules as if the config had said them (the schema and the
ceilings), with errors located in this file (:func:`gunguard.config.loader.load`).
Each value carries the record of the step that produced it: when, how, and the raw
readings behind it, so ``check-config`` can say when it was last calibrated.

The file is written only by ``gunguard calibrate``, atomically (:func:`prepare` writes
and fsyncs a temporary file next to it, :func:`commit` renames it into place), so a
crash or power cut leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict

FORMAT = "gunguard-calibration/1"

#: Each calibrated value and the config key it overrides.
KEYS: dict[str, tuple[str, str, str]] = {
    "zero": ("hardware", "force_sensor", "zero"),
    "newtons_per_unit": ("hardware", "force_sensor", "newtons_per_unit"),
    "pulses_per_percussion": ("hardware", "tachometer", "pulses_per_percussion"),
}
Key = Literal["zero", "newtons_per_unit", "pulses_per_percussion"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepRecord(_Strict):
    """How one value was calibrated: when, in words, and the raw readings behind it."""

    at: AwareDatetime
    how: str
    #: Raw ADC readings (0..1) for zero and scale; measured rates (ppm) for the tach.
    readings: tuple[float, ...]
    weight_kg: float | None = None  # newtons_per_unit: the known weight
    zero: float | None = None  # newtons_per_unit: the zero it was measured from
    reference_ppm: float | None = None  # pulses_per_percussion: the known rate
    reference: str | None = None  # ...and where it came from
    measured_with_ppp: int | None = None  # the pulses_per_percussion the daemon measured with


class Steps(_Strict):
    zero: StepRecord | None = None
    newtons_per_unit: StepRecord | None = None
    pulses_per_percussion: StepRecord | None = None


class CalibrationFile(_Strict):
    """The file. Value bounds are the config's own, checked once merged into it."""

    format: Literal["gunguard-calibration/1"]
    zero: float | None = None
    newtons_per_unit: float | None = None
    pulses_per_percussion: int | None = None
    steps: Steps = Steps()

    def values(self) -> dict[str, float | int]:
        """The calibrated values present, by key."""
        return {k: v for k in KEYS if (v := getattr(self, k)) is not None}

    def record(self, key: str) -> StepRecord | None:
        return getattr(self.steps, key)  # type: ignore[no-any-return]


def problems(cal: CalibrationFile) -> list[tuple[tuple[str, ...], Any, str]]:
    """What makes a well-typed file unusable: (path, value, why). Its values' bounds are
    the config's own, checked once merged (gunguard.config.loader)."""
    values = cal.values()
    if not values:
        return [((), None, f"no calibrated value ({', '.join(KEYS)})")]
    return [
        (
            (key,),
            value,
            f"has no record under steps.{key}: a calibration value comes from "
            "`gunguard calibrate`, which records how it was measured",
        )
        for key, value in values.items()
        if cal.record(key) is None
    ]


def resolve_path(value: str, config_path: Path) -> Path:
    """``hardware.calibration`` as a path: relative to the config file's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else config_path.parent / path


def iso(at: dt.datetime) -> str:
    """``2026-11-20T08:00:00Z``: how calibration times are written and shown."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(cal: CalibrationFile) -> str:
    """The file's text: a header, the values, then each value's record."""
    body: dict[str, Any] = {"format": FORMAT, **cal.values()}
    steps: dict[str, Any] = {}
    for key in KEYS:
        record = cal.record(key)
        if record is None:
            continue
        entry = record.model_dump(exclude_none=True)
        entry["at"] = iso(record.at)
        entry["readings"] = [round(r, 6) for r in record.readings]
        steps[key] = entry
    body["steps"] = steps
    header = (
        "# gunguard calibration, written by `gunguard calibrate` (docs/config.md#calibration).\n"
        "# Included by a config's hardware.calibration: these values override its own.\n"
        "# Do not edit by hand: calibrate again.\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=100)


def prepare(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file next to ``path``, fsynced; :func:`commit` it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def commit(tmp: Path, path: Path) -> None:
    """Rename the prepared file into place (atomic), then fsync the folder."""
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard(tmp: Path) -> None:
    """Remove a prepared file that will not be committed."""
    tmp.unlink(missing_ok=True)
