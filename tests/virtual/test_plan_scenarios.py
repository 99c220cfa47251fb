"""Plans in scenarios: days of sessions and pain scores in virtual time, one bad morning
holding progression, and the scenario format's new steps and expectations."""

from __future__ import annotations

import datetime as dt
import json
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from gunguard.config.loader import ConfigError, load
from gunguard.plan.check import check_plan
from gunguard.plan.files import load_plan
from gunguard.sim.bench import Bench
from gunguard.sim.scenario import failed_expectations, load_scenario, play, validate_scenario
from gunguard.sim.simulate import simulate

REPO = Path(__file__).resolve().parents[2]
DAY = 86400

#: Phase 2 from week 2 with the last two morning scores <= 3; one short step a session.
PLAN = """\
patient: test-A
start_date: 2026-11-20
rest_hours: 48
phases:
  - name: first
    routine:
      - {region: calf-left, minutes: 0.05, rate_ppm: [1800, 2200], cue: left}
  - name: second
    entry: {from_week: 2, morning_pain: {last: 2, at_most: 3}}
    routine:
      - {region: calf-right, minutes: 0.05, rate_ppm: [1800, 2200], cue: right}
"""


def days(mornings: list[int]) -> dict:
    """A session every other evening at 18:00 (+10 min each), pain before and after it, a
    reboot and a score every morning after."""
    steps: list[dict] = []
    for k, morning in enumerate(mornings):
        start = 2 * k * DAY + 18 * 3600 + 600 * k
        steps += [
            {"at": start - 60, "pain": {"value": 2, "when": "before"}},
            {"at": start, "gun": {"ppm": 2000, "force_n": 30}, "session": "start"},
            {"at": start + 6, "gun": {"ppm": 0, "force_n": 0}, "session": "next"},
            {"at": start + 60, "pain": {"value": 2, "when": "after"}},
            {"at": (2 * k + 1) * DAY + 7 * 3600, "reboot": True},
            {"at": (2 * k + 1) * DAY + 7.5 * 3600, "pain": {"value": morning, "when": "morning"}},
        ]
    return {
        "config": "achilles-tendinopathy",
        "start_wall_clock": "2026-11-20T00:00:00Z",
        "duration": 2 * len(mornings) * DAY,
        "steps": steps,
    }


def phases_run(bench: Bench) -> list[tuple[float, int]]:
    return [
        (e.t // DAY, e.fields["phase"])
        for e in bench.events
        if e.kind == "session" and e.fields["action"] == "started"
    ]


def test_one_bad_morning_holds_progression_for_one_session(tmp_path, cfg):
    (tmp_path / "plan.yaml").write_text(PLAN)
    data = days([2, 2, 2, 3, 2, 2])  # the morning of day 8 (3 after 2) is worse
    data["plan"] = "plan.yaml"
    data["expect"] = [
        {"session": "held", "phase": 1, "between": [8 * DAY, 9 * DAY]},
        {"session": "advanced", "phase": 2, "between": [10 * DAY, 11 * DAY]},
        {"no_trip": "any"},
    ]
    source = tmp_path / "s.yaml"
    source.write_text(yaml.safe_dump(data))
    scenario = load_scenario(source)
    plan = load_plan(scenario.plan, relative_to=tmp_path)  # type: ignore[arg-type]
    bench = Bench(
        load("achilles-tendinopathy"),
        start_wall=dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp(),
        plan=plan,
    )
    try:
        play(bench, scenario)
    finally:
        bench.close()
    assert failed_expectations(scenario, bench.events) == []
    # Days 0-6 in week 1 (phase 1); day 8 in week 2 but held; day 10 enters phase 2.
    assert phases_run(bench) == [(0, 1), (2, 1), (4, 1), (6, 1), (8, 1), (10, 2)]
    held = bench.first("session", action="held")
    assert held.fields["detail"] == (
        "next-morning pain 3/10 (2026-11-27T07:30:00Z) is worse than the previous morning's 2/10"
    )
    decisions = bench.runner.book.history().decisions
    assert [(d.to_phase, d.held) for d in decisions] == [
        (1, False), (1, False), (1, False), (1, False), (1, True), (2, False)
    ]  # fmt: skip
    status = bench.plan_status().as_dict(bench.runner.loaded.plan)
    assert status["phase"] == {"number": 2, "name": "second"}
    assert status["treated_sessions"] == 6
    assert bench.skipped_ticks > 0.99 * 12 * DAY * 1000


def test_simulate_prints_session_and_pain_events(tmp_path, capsys):
    (tmp_path / "plan.yaml").write_text(PLAN)
    data = days([2])
    data["plan"] = "plan.yaml"
    data["duration"] = DAY + 8 * 3600
    data["expect"] = [{"session": "target", "region": "calf-left"}]
    source = tmp_path / "s.yaml"
    source.write_text(yaml.safe_dump(data))
    assert simulate(source, config=None, as_json=True) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    sessions = [e["action"] for e in out if e["event"] == "session"]
    assert sessions == ["started", "armed", "target", "step_done", "completed"]
    pains = [(e["value"], e["when"], e["session"]) for e in out if e["event"] == "pain"]
    assert pains == [(2, "before", None), (2, "after", 1), (2, "morning", 1)]
    assert out[-1]["event"] == "summary"


def test_the_example_scenario_plays_the_shipped_plan_over_four_weeks():
    """The example itself runs in `make bench` (plan_4_weeks: a minute or so): here,
    that it is what it says it is."""
    scenario = load_scenario(REPO / "examples" / "achilles-calf-4-weeks.yaml")
    assert (scenario.config, scenario.plan) == ("achilles-tendinopathy", "achilles-calf-4-weeks")
    plan = load_plan(scenario.plan)
    today = scenario.start_wall_clock.date()
    assert check_plan(plan, load(scenario.config), scenario.config, today) == ([], [])
    assert scenario.duration > 27 * DAY
    starts = [s.at for s in scenario.steps if s.session == "start"]
    assert len(starts) == 14 and all(b - a >= 48 * 3600 for a, b in pairwise(starts))
    mornings = [s.pain.value for s in scenario.steps if s.pain and s.pain.when == "morning"]
    assert len(mornings) == 14 and sum(1 for s in scenario.steps if s.reboot) >= 27
    kinds = {(e.session, e.phase) for e in scenario.expect}
    assert kinds >= {("held", 1), ("advanced", 2)}


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (
            "{at: 1, pain: {value: 11, when: after}}",
            "s.yaml:3: steps[0].pain.value = 11: Input should be less than or equal to 10",
        ),
        (
            "{at: 1, pain: {value: 3, when: tomorrow}}",
            "s.yaml:3: steps[0].pain.when = 'tomorrow': Input should be 'before', 'after' or "
            "'morning'",
        ),
        (
            "{at: 1, session: pause}",
            "s.yaml:3: steps[0].session = 'pause': Input should be 'start', 'next' or 'stop'",
        ),
    ],
)
def test_scenario_steps_are_checked(tmp_path, step, expected):
    source = tmp_path / "s.yaml"
    source.write_text(f"duration: 10\nsteps:\n  - {step}\n")
    with pytest.raises(ConfigError) as caught:
        load_scenario(source)
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path}/{expected}"]


def test_session_expectations_name_a_known_action():
    with pytest.raises(ConfigError) as caught:
        validate_scenario({"duration": 1, "expect": [{"session": "advance"}]}, "s.yaml")
    assert "session: 'advance' is not a reason code" in str(caught.value)
    with pytest.raises(ConfigError, match="phase narrows session expectations only"):
        validate_scenario({"duration": 1, "expect": [{"trip": "overspeed", "phase": 1}]}, "s")


def test_a_plan_that_does_not_fit_the_scenarios_config_is_refused(tmp_path, capsys):
    (tmp_path / "plan.yaml").write_text(PLAN.replace("calf-right", "achilles-right"))
    source = tmp_path / "s.yaml"
    source.write_text(
        yaml.safe_dump({"config": "achilles-tendinopathy", "plan": "plan.yaml", "duration": 1})
    )
    assert simulate(source, config=None, as_json=False) == 2
    err = capsys.readouterr().err
    assert "phases[1].routine[0].region = 'achilles-right': cannot be armed under " in err
