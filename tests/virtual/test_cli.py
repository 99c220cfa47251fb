"""``gunguard check-config`` and ``gunguard schema``: exit codes and messages."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import gunguard
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


CHECKED_AGAIN = "  checked again at each selection, with: force sensor, rest, dose left, link"
NEVER = "never_allowed: {0} is never treated with a massage gun"
#: The trusted-inputs block of a config that includes no calibration file.
TRUSTED_UNCALIBRATED = [
    "trusted inputs (every limit depends on them; gunguard checks only plausibility):",
    "  hardware.force_sensor.zero = 0.05: never calibrated: the config's own value",
    "  hardware.force_sensor.newtons_per_unit = 300: never calibrated: the config's own value",
    "  hardware.tachometer.pulses_per_percussion = 1: never calibrated: the config's own value",
    "  no calibration file: write one with `gunguard calibrate --output FILE` and include it as "
    "hardware.calibration (docs/config.md#calibration)",
]


def test_the_default_summary_lists_what_arms_today_and_why_the_rest_does_not(capsys):
    rc, out, err = check_config(capsys, "default")
    assert (rc, err) == (0, "")
    muscles = [
        f"{part}-{side}"
        for part in ("calf", "quadriceps", "hamstrings", "glutes")
        for side in ("left", "right")
    ]
    arms = [
        *muscles,
        "upper-back",
        "lower-back",
        *(f"{p}-{s}" for p in ("shoulder", "upper-arm", "forearm") for s in ("left", "right")),
    ]
    assert out.splitlines() == [
        f"default: valid; 16 regions arm today: {', '.join(arms)}",
        "  refused chest: contraindication: chest only with a muscular chest "
        "(screening.muscular_chest)",
        *(f"  refused {r}: {NEVER.format(r)}" for r in ("face", "head", "neck", "throat")),
        CHECKED_AGAIN,
        f"config hash {configfile.config_hash(configfile.load('default'))}",
        *TRUSTED_UNCALIBRATED,
    ]


def test_the_achilles_summary(capsys):
    rc, out, _ = check_config(capsys, "achilles-tendinopathy")
    assert rc == 0
    assert out.splitlines()[:3] == [
        "achilles-tendinopathy: valid; 2 regions arm today: calf-left, calf-right",
        "  refused achilles-left, achilles-right: not_allowed: leave the tendon alone until "
        "it has calmed down",
        "  refused heel-left, heel-right: not_allowed: never on the insertion while the "
        "tendon is irritated",
    ]


@pytest.mark.parametrize(
    ("screening", "why"),
    [
        (
            "{conditions: [diabetes]}",
            "contraindication: systemic condition (diabetes): no massage gun use at all",
        ),
        (
            "{normal_sensation: false}",
            "contraindication: no normal sensation: you could not feel harm being done",
        ),
    ],
)
def test_a_systemic_contraindication_arms_nothing(capsys, tmp_path, screening, why):
    path = tmp_path / "c.yaml"
    path.write_text(f"regions: {{calf-left: {{}}, calf-right: {{}}}}\nscreening: {screening}\n")
    rc, out, _ = check_config(capsys, str(path))
    assert rc == 0
    assert out.splitlines()[:2] == [
        f"{path}: valid, but no region arms today",
        f"  refused calf-left, calf-right: {why}",
    ]


def test_wounds_scars_and_heel_bursitis_are_refused_in_the_summary(capsys, tmp_path):
    young = dt.date.today() - dt.timedelta(days=10)
    old = dt.date.today() - dt.timedelta(days=200)
    path = tmp_path / "c.yaml"
    path.write_text(
        "regions: {calf-left: {}, calf-right: {}, shin-left: {}, shin-right: {}, "
        "heel-left: {}}\n"
        "screening:\n  wounds: [calf-right]\n  heel_bursitis: true\n"
        f"  scars: [{{region: shin-left, since: {young}}}, {{region: shin-right, since: {old}}}]\n"
    )
    rc, out, _ = check_config(capsys, str(path))
    assert rc == 0
    allowed_on = young + dt.timedelta(days=84)
    assert out.splitlines()[:5] == [
        f"{path}: valid; 2 regions arm today: calf-left, shin-right",
        "  refused calf-right: wound: open wound or inflammation listed in screening.wounds",
        f"  refused shin-left: new_scar: scar from {young} is 10 days old; allowed from "
        f"{allowed_on}",
        "  refused heel-left: contraindication: never on the heel insertion with heel bursitis",
        CHECKED_AGAIN,
    ]


def test_a_none_condition_is_valid_with_a_warning(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("regions: {calf-left: {}}\nscreening:\n  conditions: [none]\n")
    rc, out, err = check_config(capsys, str(path))
    assert rc == 0
    assert err == (
        f"gunguard: warning: {path}:3: screening.conditions[0] = 'none': 'none' is not a "
        "condition: any entry refuses every region; for no condition write `conditions: []` "
        "(known conditions: diabetes, osteoporosis, iron_deficiency, kidney_disease)\n"
    )
    assert out.startswith(f"{path}: valid, but no region arms today\n")


def test_the_shipped_names_are_the_repository_configs():
    assert configfile.shipped_names() == sorted(p.stem for p in (REPO / "config").glob("*.yaml"))
    assert configfile.shipped_names() == ["achilles-tendinopathy", "default"]


def test_a_valid_file_by_path(capsys, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("regions:\n  calf-left: {max_ppm: 2000}\n")
    rc, out, _ = check_config(capsys, str(path))
    assert rc == 0
    assert out.startswith(f"{path}: valid; 1 region arms today: calf-left\n")


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
    assert f"{path}:2: screening.normal_sensation = 'maybe': must be true or false" in (done.stderr)
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


# -- which firmware `gunguard run` talks to ---------------------------------------------------
SERIAL_CFG = "hardware: {pin_factory: mock}\nserial: {port: /dev/ttyNOWHERE}\n"
PLAIN_CFG = "hardware: {pin_factory: mock}\n"
SCENARIO = "duration: 1\nsteps:\n  - {at: 0.5, firmware: {motor: 'on'}}\n"


@pytest.mark.parametrize(
    ("config", "scenario", "flags", "problem"),
    [
        (SERIAL_CFG, None, ["--sim-firmware"], "--sim-firmware needs --sim-gun"),
        (PLAIN_CFG, "duration: 1\nsteps: []\n", ["--sim-firmware"], "needs a serial: section"),
        (
            SERIAL_CFG,
            SCENARIO,
            [],
            "the scenario's link:/firmware: steps (at 0.5 s) act on the built-in simulated "
            "firmware: add --sim-firmware",
        ),
    ],
)
def test_run_refuses_a_firmware_it_cannot_have(capsys, tmp_path, config, scenario, flags, problem):
    """Checked before anything starts: exit 2 (systemd's RestartPreventExitStatus)."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(config)
    args = ["run", "--config", str(cfg), *flags]
    if scenario is not None:
        (tmp_path / "s.yaml").write_text(scenario)
        args += ["--sim-gun", str(tmp_path / "s.yaml")]
    assert main(args) == 2
    assert problem in capsys.readouterr().err


# -- clean errors: one line, a documented exit status, the next step ---------------------------


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*gunguard_command(), *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_version():
    done = run_cli("--version")
    assert (done.returncode, done.stdout) == (0, f"gunguard {gunguard.__version__}\n")


def test_power_off_that_cannot_drive_the_pin_is_one_line_and_exit_3(capsys, monkeypatch):
    from gunguard.hardware import poweroff

    def unusable(*_):
        raise RuntimeError("pin factory 'lgpio' is not usable here: No module named 'lgpio'")

    monkeypatch.setattr(poweroff, "force_power_off", unusable)
    assert main(["power-off"]) == 3
    _, err = capsys.readouterr()
    assert err == (
        "gunguard power-off: could not drive GPIO27 off: pin factory 'lgpio' is not usable "
        "here: No module named 'lgpio' (only the gate pull-down holds the motor off now)\n"
    )


no_gpio = pytest.mark.skipif(
    importlib.util.find_spec("lgpio") is not None, reason="this machine has lgpio (a Pi?)"
)


@no_gpio
def test_run_without_gpio_writes_no_state_and_names_the_next_steps(tmp_path):
    store = tmp_path / "state" / "history.db"
    done = run_cli("run", "--config", "default", "--db", str(store), cwd=tmp_path)
    assert done.returncode == 3
    assert not store.parent.exists(), "nothing is written before the hardware is up"
    assert list(tmp_path.iterdir()) == [], "nothing in the working directory either"
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    line = done.stderr
    assert line.startswith("gunguard: hardware initialisation failed: no usable GPIO pin factory")
    for step in ("'gunguard[pi]'", "--sim-gun demo-session", "{pin_factory: mock}"):
        assert step in line


@no_gpio
def test_power_off_without_gpio_exits_3_in_one_line():
    done = run_cli("power-off")
    assert done.returncode == 3
    assert done.stderr.startswith("gunguard power-off: could not drive GPIO27 off: ")
    assert len(done.stderr.splitlines()) == 1


def test_run_prints_each_config_problem_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("limits:\n  max_force_n: 500\nregions: {neck: {}}\n")
    done = run_cli("run", "--config", str(bad))
    checked = run_cli("check-config", str(bad))
    assert (done.returncode, checked.returncode) == (2, 2)
    assert done.stderr == checked.stderr
    assert done.stderr.splitlines()[0] == "gunguard: invalid configuration (2 problem(s)):"


def test_history_on_a_fresh_machine_says_there_is_none_yet(capsys, tmp_path):
    assert main(["history", "--db", str(tmp_path / "history.db")]) == 0
    out, err = capsys.readouterr()
    assert out == f"no treatments yet (no treatment history at {tmp_path / 'history.db'})\n"
    assert err == ""
    assert main(["history", "--json", "--db", str(tmp_path / "history.db")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["treatments"], data["trips"], data["regions"]) == ([], [], [])
    assert not (tmp_path / "history.db").exists()
