"""The calibration file a config includes (``hardware.calibration``): merged over the
config's own values, validated by the same rules, errors located in the file that
said the value; a missing or invalid file is a config error."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gunguard.config import calibration as calfile
from gunguard.config import loader as configfile
from gunguard.config.calibration import CalibrationFile, StepRecord, Steps
from gunguard.config.loader import ConfigError

AT = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)


def record(how: str = "64 readings with nothing on the head", **extra) -> StepRecord:
    return StepRecord(at=AT, how=how, readings=(0.05, 0.051, 0.0505), **extra)


def cal_text(**values) -> str:
    """A calibration file with ``values`` (each with its record)."""
    steps = Steps(**{key: record(f"{key} measured") for key in values})
    return calfile.render(CalibrationFile(format=calfile.FORMAT, steps=steps, **values))


def write(tmp_path: Path, config: str, cal: str | None = None, name: str = "cal.yaml") -> Path:
    path = tmp_path / "gun.yaml"
    path.write_text(config)
    if cal is not None:
        (tmp_path / name).write_text(cal)
    return path


INCLUDES = "hardware:\n  pin_factory: mock\n  calibration: cal.yaml\n"


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        configfile.load(str(path))
    return [str(p) for p in err.value.problems]


def line_of(text: str, key: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith(f"{key}:"))


def test_the_calibration_overrides_the_configs_own_values(tmp_path):
    config = (
        "hardware:\n  calibration: cal.yaml\n  force_sensor: {zero: 0.05, channel: 3}\n"
        "  tachometer: {pulses_per_percussion: 1}\n"
    )
    path = write(
        tmp_path, config, cal_text(zero=0.0612, newtons_per_unit=287.5, pulses_per_percussion=2)
    )
    hw = configfile.load(str(path)).hardware
    assert (hw.force_sensor.zero, hw.force_sensor.newtons_per_unit) == (0.0612, 287.5)
    assert hw.force_sensor.channel == 3  # the rest of the section is the config's
    assert hw.tachometer.pulses_per_percussion == 2
    assert hw.calibration == "cal.yaml"


def test_only_the_calibrated_values_override(tmp_path):
    path = write(
        tmp_path, INCLUDES + "  force_sensor: {newtons_per_unit: 250}\n", cal_text(zero=0.07)
    )
    hw = configfile.load(str(path)).hardware
    assert (hw.force_sensor.zero, hw.force_sensor.newtons_per_unit) == (0.07, 250.0)


def test_the_path_is_relative_to_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    path = write(tmp_path / "etc", INCLUDES, cal_text(zero=0.06))
    monkeypatch.chdir(tmp_path)
    assert configfile.load("etc/gun.yaml").hardware.force_sensor.zero == 0.06
    absolute = write(tmp_path, f"hardware: {{calibration: {tmp_path / 'etc' / 'cal.yaml'}}}\n")
    assert configfile.load(str(absolute)).hardware.force_sensor.zero == 0.06
    assert path.exists()


def test_a_recalibration_changes_the_config_hash(tmp_path):
    path = write(tmp_path, INCLUDES, cal_text(zero=0.06))
    before = configfile.config_hash(configfile.load(str(path)))
    (tmp_path / "cal.yaml").write_text(cal_text(zero=0.061))
    assert configfile.config_hash(configfile.load(str(path))) != before


def test_a_missing_calibration_file_is_a_config_error_naming_the_next_step(tmp_path):
    path = write(tmp_path, INCLUDES)
    (problem,) = problems(path)
    assert problem.startswith(
        f"{path}:3: hardware.calibration = 'cal.yaml': no calibration file at "
    )
    assert "gunguard does not run on guessed calibration" in problem
    assert f"gunguard calibrate --config {path}" in problem
    assert "remove hardware.calibration" in problem


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"zero": 0.99}, "zero", "the unloaded reading must lie in valid_min..valid_max"),
        ({"zero": 0.01}, "zero", "the unloaded reading must lie in valid_min..valid_max"),
        ({"zero": 1.5}, "zero", "Input should be less than or equal to 1"),
        ({"newtons_per_unit": -3.0}, "newtons_per_unit", "Input should be greater than 0"),
        ({"newtons_per_unit": 0.0}, "newtons_per_unit", "Input should be greater than 0"),
        (
            {"pulses_per_percussion": 0},
            "pulses_per_percussion",
            "Input should be greater than or equal to 1",
        ),
        (
            {"pulses_per_percussion": 65},
            "pulses_per_percussion",
            "Input should be less than or equal to 64",
        ),
    ],
)
def test_a_bad_value_is_refused_by_the_configs_own_rules_and_located_in_the_file(
    tmp_path, values, key, message
):
    text = cal_text(**values)
    path = write(tmp_path, INCLUDES, text)
    (problem,) = problems(path)
    where = f"{tmp_path / 'cal.yaml'}:{line_of(text, key)}: {key} = {values[key]!r}: {message}"
    assert problem.startswith(where), problem
    section = "tachometer" if key == "pulses_per_percussion" else "force_sensor"
    assert f"(overrides hardware.{section}.{key}; included by {path}:3)" in problem


def test_a_zero_valid_only_under_the_configs_own_range_is_refused(tmp_path):
    """The range is the config's: a calibration cannot widen it."""
    path = write(tmp_path, INCLUDES + "  force_sensor: {valid_min: 0.1}\n", cal_text(zero=0.06))
    (problem,) = problems(path)
    assert "cal.yaml:" in problem and "zero = 0.06" in problem and "valid_min..valid_max" in problem


CAL_HEADER = "format: gunguard-calibration/1\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("zero: [\n", "cal.yaml:2: (top level): not valid YAML"),
        ("- 1\n", "cal.yaml:1: (top level) = [1]: Input should be a valid dictionary"),
        (CAL_HEADER + "zero: 0.06\n", "cal.yaml:2: zero = 0.06: has no record under steps.zero"),
        (CAL_HEADER + "steps: {}\n", "cal.yaml:1: (top level): no calibrated value"),
        (
            CAL_HEADER + "pulses_per_percussion: 2.5\n",
            "cal.yaml:2: pulses_per_percussion = 2.5: Input should be a valid integer",
        ),
        (CAL_HEADER + "zero: low\n", "cal.yaml:2: zero = 'low': Input should be a valid number"),
        (CAL_HEADER + "offset: 3\n", "cal.yaml:2: offset = 3: unknown key"),
        (
            "format: v2\nzero: 0.06\n",
            "cal.yaml:1: format = 'v2': Input should be 'gunguard-calibration/1'",
        ),
        (CAL_HEADER + "zero: 0.06\nzero: 0.07\n", "cal.yaml:3: zero: key given twice"),
        (
            cal_text(zero=0.06).replace("at: '2026-11-20T08:00:00Z'", "at: yesterday"),
            "steps.zero.at = 'yesterday': Input should be a valid datetime",
        ),
    ],
    ids=["yaml", "not-a-mapping", "no-record", "no-value", "ppp-fraction", "zero-text",
         "unknown-key", "format", "duplicate", "bad-time"],
)  # fmt: skip
def test_an_invalid_calibration_file_is_a_config_error(tmp_path, text, expected):
    path = write(tmp_path, INCLUDES, text)
    found = problems(path)
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(tmp_path / "cal.yaml")) for p in found), found


def test_an_empty_calibration_path_is_refused(tmp_path):
    path = write(tmp_path, "hardware: {calibration: ''}\n")
    assert problems(path) == [f"{path}:1: hardware.calibration = '': must name a file"]


def test_calibrate_may_load_the_config_without_its_calibration(tmp_path):
    path = write(tmp_path, INCLUDES)  # (no file yet)
    cfg = configfile.load(str(path), include_calibration=False)
    assert cfg.hardware.force_sensor.zero == 0.05
    assert configfile.calibration_path(cfg, path) == tmp_path / "cal.yaml"


def test_the_written_file_reads_back_the_same(tmp_path):
    cal = CalibrationFile(
        format=calfile.FORMAT,
        zero=0.0512,
        newtons_per_unit=287.4,
        steps=Steps(
            zero=record(),
            newtons_per_unit=record("a 2 kg weight", weight_kg=2.0, zero=0.0512),
        ),
    )
    target = tmp_path / "sub" / "cal.yaml"
    tmp = calfile.prepare(target, calfile.render(cal))
    assert not target.exists() and tmp.parent == target.parent
    calfile.commit(tmp, target)
    assert not tmp.exists()
    text = target.read_text()
    assert text.startswith("# gunguard calibration, written by `gunguard calibrate`")
    assert configfile.read_calibration(target)[0] == cal


def test_a_discarded_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "cal.yaml"
    target.write_text("old")
    tmp = calfile.prepare(target, "new")
    calfile.discard(tmp)
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
