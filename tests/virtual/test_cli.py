"""``gunguard check-config`` and ``gunguard schema``: exit codes and messages."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.processes import gunguard_command
from gunguard.cli import main
from gunguard.config import loader as configfile
from gunguard.config.schema import GunguardConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """main() sets up the root logger for a process: put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def check_config(capsys, target: str) -> tuple[int, str, str]:
    rc = main(["check-config", target])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("name", configfile.shipped_names())
def test_shipped_names_resolve_and_are_valid(capsys, name):
    rc, out, err = check_config(capsys, name)
    assert rc == 0, err
    cfg = configfile.load(name)
    allowed = [n for n, r in cfg.regions.items() if r.allowed]
    lines = out.splitlines()
    assert lines[:2] == [
        f"{name}: valid ({len(allowed)} treatable regions: {', '.join(allowed)})",
        f"config hash {configfile.config_hash(cfg)}",
    ]
    assert lines[2].startswith("trusted inputs")  # the calibration block (test_calibrate_cli)


def test_the_shipped_names_are_the_repository_configs():
    assert configfile.shipped_names() == sorted(p.stem for p in (REPO / "config").glob("*.yaml"))
    assert configfile.shipped_names() == ["achilles-tendinopathy", "default"]


def test_a_valid_file_by_path(capsys, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("regions:\n  calf-left: {max_ppm: 2000}\n")
    rc, out, _ = check_config(capsys, str(path))
    assert rc == 0
    assert out.startswith(f"{path}: valid (1 treatable regions: calf-left)\n")


BAD = [
    (
        "unknown-key",
        "hardware:\n  tachometer:\n    pulses_per_percusion: 2\n",
        ":3: hardware.tachometer.pulses_per_percusion = 2: unknown key",
    ),
    (
        "loosened-ceiling",
        "limits:\n  max_force_n: 90\n  bands:\n    - {up_to_ppm: 2400, max_minutes: 7}\n",
        ":4: limits.bands[0].max_minutes = 7.0: loosens the built-in ceiling "
        "'time per muscle group at <= 2400 ppm' (5 min, from the clinical guidance)",
    ),
    (
        "allowed-neck",
        "regions:\n  calf-left: {}\n  neck:\n    allowed: true\n",
        ":4: regions.neck.allowed = True: neck can never be treated",
    ),
    (
        "wrong-type",
        "limits:\n  no_tach_contact_s: soon\n",
        ":2: limits.no_tach_contact_s = 'soon': Input should be a valid number",
    ),
    (
        "duplicate-key",
        "regions:\n  calf-left: {}\n  calf-left: {max_force_n: 20}\n",
        ":3: regions.calf-left: key given twice",
    ),
    (
        "bad-yaml",
        "regions:\n  calf-left: {max_force_n: 20\n  calf-right: {}\n",
        ":3: (top level): not valid YAML: expected ',' or '}', but got ':'",
    ),
    (
        "zero-loop-rate",
        "loop: {rate_hz: 0}\n",
        ":1: loop.rate_hz = 0: Input should be greater than 0",
    ),
    (
        "motor-pin-not-a-gpio-name",
        "hardware:\n  motor_power: {pin: BOARD13, active_high: false}\n",
        ":2: hardware.motor_power.pin = 'BOARD13': name the motor enable by its GPIO (BCM)",
    ),
]


@pytest.mark.parametrize(("text", "problem"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_config_exits_2_naming_field_and_line(capsys, tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    rc, out, err = check_config(capsys, str(path))
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "gunguard: invalid configuration (1 problem(s)):"
    assert lines[1].startswith(f"  {path}{problem}"), lines[1]
    assert re.match(rf"  {re.escape(str(path))}:\d+: ", lines[1])  # always a line number


def test_every_problem_is_listed(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("loop:\n  rate_hz: 100\nlimits:\n  max_force_n: 500\n")
    rc, _, err = check_config(capsys, str(path))
    assert rc == 2
    assert err.splitlines() == [
        "gunguard: invalid configuration (2 problem(s)):",
        f"  {path}:4: limits.max_force_n = 500.0: loosens the built-in ceiling 'head force' "
        "(200 N, engineering bound)",
        f"  {path}:2: loop.rate_hz = 100.0: loosens the built-in ceiling 'slowest control loop' "
        "(200 Hz (minimum), engineering bound)",
    ]


def test_a_missing_file_exits_2(capsys):
    rc, _, err = check_config(capsys, "no/such/file.yaml")
    assert rc == 2
    assert "no/such/file.yaml: (top level): no such file, and not a shipped config" in err


def test_empty_bands_exit_2(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("limits:\n  bands: []\n")
    rc, _, err = check_config(capsys, str(path))
    assert rc == 2
    assert f"  {path}:2: limits.bands = []: at least one band is needed" in err


def test_the_installed_command_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("screening:\n  normal_sensation: maybe\n")
    done = subprocess.run(
        [*gunguard_command(), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"{path}:2: screening.normal_sensation = 'maybe': Input should be a valid boolean" in (
        done.stderr
    )
    done = subprocess.run(
        [*gunguard_command(), "check-config", "achilles-tendinopathy"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


# -- schema ------------------------------------------------------------------------------------


def test_schema_is_the_configs_json_schema(capsys):
    assert main(["schema"]) == 0
    out, _ = capsys.readouterr()
    schema = json.loads(out)
    assert schema == GunguardConfig.model_json_schema()
    assert schema["type"] == "object"
    assert schema["title"] == "GunguardConfig"
    assert set(schema["properties"]) == set(GunguardConfig.model_fields)
    assert schema["additionalProperties"] is False  # unknown keys are errors in editors too
    for name, definition in schema["$defs"].items():
        if definition.get("type") == "object" and "properties" in definition:
            assert definition["additionalProperties"] is False, name
    # every $ref resolves
    refs = re.findall(r'"\$ref": "#/\$defs/([^"]+)"', out)
    assert refs
    assert set(refs) <= set(schema["$defs"])
    # a shipped config's keys are all in the schema
    for section, body in configfile.load("default").model_dump().items():
        assert section in schema["properties"]
        assert body is None or isinstance(body, dict | list | tuple)
    channel = schema["$defs"]["ForceSensorConfig"]["properties"]["channel"]
    assert (channel["minimum"], channel["maximum"]) == (0, 7)
