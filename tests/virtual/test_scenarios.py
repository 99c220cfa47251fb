"""``gunguard simulate``: the JSON-lines contract, exit codes, invalid scenarios.

Timing (a 10-minute scenario in under 6 s) belongs to ``make bench``; here only
behaviour is asserted.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.processes import gunguard_command
from gunguard.sim.simulate import simulate

REPO = Path(__file__).resolve().parents[2]
CONTRACT_EVENTS = {"power", "trip", "refused", "region", "warning", "reset"}

#: Six seconds of dose at <= 2400 ppm, so a scenario reaches the warning and the trip fast.
SHORT_DOSE_CONFIG = """\
limits:
  bands:
    - {up_to_ppm: 2400, max_minutes: 0.1}
regions:
  calf-left: {max_ppm: 2400}
  calf-right: {max_ppm: 2400}
"""

EVERY_EVENT = """\
config: short-dose.yaml
duration: 12
seed: 3
steps:
  - {at: 0.5, region: calf-left}
  - {at: 0.5, gun: {ppm: 2200, force_n: 30}}
  - {at: 2.0, gun: {ppm: 2600}}                 # overspeed
  - {at: 3.0, reset: true, gun: {ppm: 2200}}
  - {at: 3.5, region: neck}                     # refused
  - {at: 4.0, region: calf-left}                # the dose runs out at about 10 s
  - {at: 11.0, region: null}
expect:
  - {trip: overspeed, between: [2.0, 2.5]}
  - {refused: never_allowed, region: neck}
  - {warning: dose_near_limit, region: calf-left}
  - {trip: region_dose, between: [8.0, 8.5]}
  - {no_trip: overforce}
"""


@pytest.fixture
def scenario(tmp_path: Path):
    """Write a scenario (and the short-dose config beside it); returns its path."""
    (tmp_path / "short-dose.yaml").write_text(SHORT_DOSE_CONFIG)

    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def run_json(capsys, path: Path, **kwargs) -> tuple[int, list[dict], str]:
    rc = simulate(path, config=kwargs.pop("config", None), as_json=True, **kwargs)
    out, err = capsys.readouterr()
    return rc, [json.loads(line) for line in out.splitlines()], err


def test_json_lines_contract(capsys, scenario):
    rc, lines, err = run_json(capsys, scenario(EVERY_EVENT))
    assert rc == 0, err
    *body, summary = lines
    assert {line["event"] for line in body} == CONTRACT_EVENTS
    times = [line["t"] for line in lines]
    assert times == sorted(times)
    assert all(isinstance(t, float | int) for t in times)
    for line in body:
        assert list(line)[:2] == ["t", "event"]
    # one line per event, exactly as the supervisor announced them
    assert [(line["event"], line.get("on", line.get("reason"))) for line in body] == [
        ("region", None),
        ("warning", "near_artery"),
        ("power", True),
        ("power", False),
        ("trip", "overspeed"),
        ("region", None),
        ("reset", None),
        ("refused", "never_allowed"),
        ("region", None),
        ("warning", "near_artery"),
        ("power", True),
        ("warning", "dose_near_limit"),
        ("power", False),
        ("trip", "region_dose"),
        ("region", None),
    ]
    assert body[0] == {"t": 0.5, "event": "region", "region": "calf-left"}
    assert body[6] == {
        "t": 3.0,
        "event": "reset",
        "cleared": "overspeed",
        "reasons": ["overspeed"],
    }
    assert body[7] == {
        "t": 3.5,
        "event": "refused",
        "reason": "never_allowed",
        "region": "neck",
        "detail": "neck is never treated with a massage gun",
    }
    warning = body[11]
    assert (warning["region"], warning["dose"]) == ("calf-left", 0.9)
    # the summary: last, per region, and the trips in order
    assert summary["event"] == "summary"
    assert summary["t"] == 12.0
    assert summary["trips"] == ["overspeed", "region_dose"]
    calf = summary["regions"]["calf-left"]
    assert {"contact_seconds", "dose", "seconds_by_band"} <= set(calf)
    assert calf["seconds_by_band"] == [calf["contact_seconds"]]
    assert calf["dose"] == pytest.approx(calf["contact_seconds"] / 6.0, abs=1e-3)
    assert calf["dose"] >= 1.0
    assert list(summary["regions"]) == ["calf-left"]  # nothing else was treated
    assert err.splitlines()[-5:] == [
        "expect trip: overspeed between 2 and 2.5 s: ok",
        "expect refused: never_allowed (region neck): ok",
        "expect warning: dose_near_limit (region calf-left): ok",
        "expect trip: region_dose between 8 and 8.5 s: ok",
        "expect no_trip: overforce: ok",
    ]


def test_the_same_scenario_gives_the_same_output(capsys, scenario):
    path = scenario(EVERY_EVENT)
    assert run_json(capsys, path)[:2] == run_json(capsys, path)[:2]


def test_human_output(capsys, scenario):
    rc = simulate(scenario(EVERY_EVENT), config=None, as_json=False)
    out, _ = capsys.readouterr()
    assert rc == 0
    lines = out.splitlines()
    assert lines[:3] == [
        "    0.500 s  region calf-left",
        "    0.500 s  warning near_artery: calf-left: keep away from the back of the knee "
        "(knee-back-left, popliteal artery)",
        "    0.500 s  power ON",
    ]
    assert "    3.500 s  refused neck: never_allowed: neck is never treated with a massage gun" in (
        lines
    )
    assert lines[-2].startswith("  calf-left        contact ")
    assert lines[-1] == "  trips: overspeed, region_dose"


@pytest.mark.parametrize(
    ("expect", "failed"),
    [
        ("  - {trip: overforce}\n", "expect trip: overforce: FAILED"),
        ("  - {no_trip: overspeed}\n", "expect no_trip: overspeed: FAILED"),
        ("  - {no_trip: any}\n", "expect no_trip: any: FAILED"),
        (
            "  - {trip: overspeed, between: [0.0, 1.0]}\n",
            "expect trip: overspeed between 0 and 1 s: FAILED",
        ),
        (
            "  - {refused: never_allowed, region: face}\n",
            "expect refused: never_allowed (region face): FAILED",
        ),
    ],
)
def test_exit_1_when_an_expectation_fails(capsys, scenario, expect, failed):
    text = EVERY_EVENT + expect
    rc, lines, err = run_json(capsys, scenario(text))
    assert rc == 1
    assert lines[-1]["event"] == "summary"  # the run is complete all the same
    assert err.splitlines()[-1] == failed
    assert err.count(": ok") == 5


def test_config_option_overrides_the_scenarios(capsys, scenario, tmp_path):
    path = scenario(EVERY_EVENT)
    rc, lines, _ = run_json(capsys, path, config="achilles-tendinopathy")
    # five minutes of dose: no dose warning or trip in 12 s, so two expectations fail
    assert rc == 1
    assert lines[-1]["trips"] == ["overspeed"]


INVALID = [
    (
        "unknown-key",
        "duration: 5\nsteps:\n  - {at: 1, regoin: calf-left}\n",
        "scenario.yaml:3: steps[0].regoin = 'calf-left': unknown key",
    ),
    (
        "unknown-trip-reason",
        "duration: 5\nexpect:\n  - {no_trip: overspeeed}\n",
        "scenario.yaml:3: expect[0] = {'no_trip': 'overspeeed'}: no_trip: 'overspeeed' is not "
        "a reason code",
    ),
    (
        "unknown-refusal-reason",
        "duration: 5\nexpect:\n  - {refused: neck}\n",
        "scenario.yaml:3: expect[0] = {'refused': 'neck'}: refused: 'neck' is not a reason code",
    ),
    (
        "two-kinds-in-one-expectation",
        "duration: 5\nexpect:\n  - {trip: overspeed, no_trip: overforce}\n",
        "scenario.yaml:3: expect[0]",
    ),
    (
        "step-after-the-end",
        "duration: 5\nsteps:\n  - {at: 6, region: calf-left}\n",
        "scenario.yaml:1: (top level)",
    ),
    (
        "step-without-action",
        "duration: 5\nsteps:\n  - {at: 1}\n",
        "scenario.yaml:3: steps[0]",
    ),
    (
        "bad-wall-clock",
        "duration: 5\nsteps:\n  - {at: 1, wall_clock: tomorrow}\n",
        "scenario.yaml:3: steps[0].wall_clock = 'tomorrow': a wall-clock step looks like",
    ),
    (
        "unknown-fault",
        "duration: 5\nsteps:\n  - {at: 1, fault: {force: broken}}\n",
        "scenario.yaml:3: steps[0].fault.force = 'broken'",
    ),
    (
        "wrong-type",
        "duration: five\n",
        "scenario.yaml:1: duration = 'five': Input should be a valid number",
    ),
    (
        "missing-duration",
        "steps: []\n",
        "scenario.yaml:1: duration = {'steps': []}: Field required",
    ),
    ("bad-yaml", "duration: 5\nsteps: [\n", "scenario.yaml:3: (top level): not valid YAML"),
    (
        "duplicate-key",
        "duration: 5\nduration: 6\n",
        "scenario.yaml:2: duration: key given twice",
    ),
    (
        "missing-config",
        "config: no-such-config\nduration: 5\n",
        "no-such-config: (top level): no such file, and not a shipped config",
    ),
]


@pytest.mark.parametrize(("text", "message"), [i[1:] for i in INVALID], ids=[i[0] for i in INVALID])
def test_exit_2_for_an_invalid_scenario(capsys, scenario, text, message):
    path = scenario(text)
    rc = simulate(path, config=None, as_json=True)
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""  # nothing ran
    assert err.startswith("gunguard simulate: invalid input (")
    assert f"  {path.parent / message}" in err or f"  {message}" in err, err


def test_exit_2_for_an_invalid_config_names_its_file_line_and_field(capsys, scenario, tmp_path):
    (tmp_path / "loose.yaml").write_text(
        "# too much\nlimits:\n  bands:\n    - {up_to_ppm: 2400, max_minutes: 6}\n"
    )
    rc = simulate(scenario("config: loose.yaml\nduration: 5\n"), config=None, as_json=True)
    _, err = capsys.readouterr()
    assert rc == 2
    assert f"  {tmp_path / 'loose.yaml'}:4: limits.bands[0].max_minutes = 6.0: loosens" in err


def test_demo_session_passes(capsys):
    rc, lines, err = run_json(capsys, REPO / "examples" / "demo-session.yaml")
    assert rc == 0, err
    assert lines[-1]["trips"] == ["overspeed", "overforce"]
    assert err.count(": ok") == 5
    assert {line["event"] for line in lines[:-1]} <= CONTRACT_EVENTS


TEN_MINUTES = """\
config: short-dose.yaml
duration: 600
seed: 11
steps:
  - {at: 1.0, region: calf-left}
  - {at: 1.0, gun: {ppm: 2200, force_n: 30}}
  - {at: 60.0, region: calf-left}        # used up since about 7 s
  - {at: 61.0, reset: true}
  - {at: 62.0, region: calf-left}        # still used up after a reset
  - {at: 63.0, region: calf-right}
  - {at: 120.0, region: null}
  - {at: 299.0, reset: true}
  - {at: 300.0, region: upper-back}      # not in this config
  - {at: 400.0, fault: {force: frozen}}
  - {at: 400.5, region: calf-right}      # used up too
  - {at: 599.0, region: null}
expect:
  - {warning: dose_near_limit, region: calf-left, between: [6.0, 6.8]}
  - {trip: region_dose, between: [7.0, 7.5]}
  - {refused: trip_latched, region: calf-left, between: [60, 60]}
  - {refused: region_dose, region: calf-left, between: [62, 62]}
  - {trip: region_dose, between: [69.0, 69.5]}
  - {refused: unknown_region, region: upper-back}
  - {no_trip: force_sensor_fault}
"""


def test_a_ten_minute_scenario(capsys, scenario):
    rc, lines, err = run_json(capsys, scenario(TEN_MINUTES))
    assert rc == 0, err
    summary = lines[-1]
    assert summary["t"] == 600.0
    assert summary["trips"] == ["region_dose", "region_dose"]
    for region in ("calf-left", "calf-right"):
        assert summary["regions"][region]["dose"] >= 1.0
        assert summary["regions"][region]["contact_seconds"] < 7.0
    power = [(line["t"], line["on"]) for line in lines if line["event"] == "power"]
    assert [on for _, on in power] == [True, False, True, False]
    assert power[2][0] == 63.0


def test_the_command_line_entry_point(scenario):
    path = scenario(EVERY_EVENT + "  - {trip: overforce}\n")
    done = subprocess.run(
        [*gunguard_command(), "simulate", "--json", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    last = json.loads(done.stdout.splitlines()[-1])
    assert last["event"] == "summary"
    assert done.stderr.splitlines()[-1] == "expect trip: overforce: FAILED"
    invalid = scenario("duration: -1\n", name="bad.yaml")
    done = subprocess.run(
        [*gunguard_command(), "simulate", str(invalid)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"{invalid}:1: duration = -1: Input should be greater than 0" in done.stderr


def test_the_summary_keeps_regions_treated_before_a_restart(capsys, scenario):
    text = """\
duration: 8
steps:
  - {at: 0.5, region: calf-left}
  - {at: 0.5, gun: {ppm: 2200, force_n: 30}}
  - {at: 4.0, region: null}
  - {at: 5.0, restart: true}
"""
    rc, lines, _ = run_json(capsys, scenario(text))
    assert rc == 0
    assert lines[-1]["regions"]["calf-left"]["contact_seconds"] > 3.0


def test_tach_noise_on_a_whole_second(capsys, scenario):
    text = """\
duration: 4
steps:
  - {at: 0.5, region: calf-left}
  - {at: 0.5, gun: {ppm: 2200, force_n: 30}}
  - {at: 2.0, fault: {tach: noise}}
expect:
  - {trip: tach_implausible, between: [2.0, 3.0]}
"""
    rc, _, err = run_json(capsys, scenario(text))
    assert rc == 0, err
