"""Plan files: validated like configs (file, line, key), and a plan only tightens its config."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from gunguard.cli import main
from gunguard.config.loader import ConfigError, load
from gunguard.plan.check import check_plan
from gunguard.plan.files import load_plan, parse_plan, shipped_names

TODAY = dt.date(2026, 11, 20)

GOOD = """\
patient: test-A
start_date: 2026-11-20
rest_hours: 48
phases:
  - name: one
    routine:
      - {region: calf-left, minutes: 2, rate_ppm: [1800, 2200], cue: left}
      - {region: calf-right, minutes: 2, rate_ppm: [1800, 2200], cue: right}
  - name: two
    entry: {from_week: 3, morning_pain: {last: 3, at_most: 3}}
    routine:
      - {region: calf-left, minutes: 3, rate_ppm: [2000, 2400], cue: left}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_plan(textwrap.dedent(text), "p.yaml", "p")
    return [str(p) for p in caught.value.problems]


def checked(text: str, config: str = "achilles-tendinopathy") -> tuple[list[str], list[str]]:
    loaded = parse_plan(text, "p.yaml", "p")
    problems, warnings = check_plan(loaded, load(config), config, TODAY)
    return [str(p) for p in problems], [str(w) for w in warnings]


def test_the_shipped_plan_fits_the_achilles_config_and_is_found_by_name():
    assert shipped_names() == ["achilles-calf-4-weeks"]
    loaded = load_plan("achilles-calf-4-weeks")
    assert loaded.name == "achilles-calf-4-weeks" and loaded.plan.config == "achilles-tendinopathy"
    assert check_plan(loaded, load("achilles-tendinopathy"), "achilles", TODAY) == ([], [])
    regions = {s.region for phase in loaded.plan.phases for s in phase.routine}
    assert regions == {"calf-left", "calf-right"}, "the tendon is held back in every phase"
    assert loaded.plan.rest_hours == 48
    # The comments say why the tendon and seed 000's friction steps are left out.
    assert "Why the tendon is held back" in loaded.document
    assert "strongly advise against cross friction" in loaded.document


def test_a_good_plan_checks_clean():
    assert checked(GOOD) == ([], [])


def test_unknown_keys_and_bad_values_name_file_line_and_key():
    text = GOOD.replace("cue: right}", "cues: right}").replace("minutes: 3,", "minutes: 6,")
    assert problems_of(text) == [
        "p.yaml:8: phases[0].routine[1].cue: required (docs/plans.md)",
        "p.yaml:8: phases[0].routine[1].cues = 'right': unknown key (check the spelling; "
        "docs/plans.md lists every key)",
        "p.yaml:12: phases[1].routine[0].minutes = 6: Input should be less than or equal to 5",
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            (
                "  - name: two\n    entry: {from_week: 3, morning_pain: {last: 3, at_most: 3}}\n",
                "  - name: two\n",
            ),
            "p.yaml:4: phases: phases[1] (two) needs an entry rule",
        ),
        (
            ("  - name: one\n", "  - name: one\n    entry: {from_week: 1}\n"),
            "p.yaml:4: phases: the first phase begins with the plan: it takes no entry rule",
        ),
        (
            ("rate_ppm: [1800, 2200], cue: left", "rate_ppm: [2200, 1800], cue: left"),
            "p.yaml:7: phases[0].routine[0].rate_ppm = [2200, 1800]: the band is [lowest, "
            "highest]: the first rate must not be above the second",
        ),
        (
            ("region: calf-right", "region: calf-rigth"),
            "p.yaml:8: phases[0].routine[1].region = 'calf-rigth': unknown region "
            "'calf-rigth'; did you mean calf-right or calf-left or heel-right?",
        ),
        (
            ("rest_hours: 48", "rest_hours: 24"),
            "p.yaml:3: rest_hours = 24: Input should be greater than or equal to 48",
        ),
        (
            ("entry: {from_week: 3, morning_pain: {last: 3, at_most: 3}}", "entry: {}"),
            "p.yaml:10: phases[1].entry: give at least one of from_week, min_sessions, "
            "morning_pain",
        ),
        (
            ("[1800, 2200], cue: left", '[1800, 2200], cue: "left\\e[2J"'),
            "p.yaml:7: phases[0].routine[0].cue = 'left\\x1b[2J': the cue must be one line "
            "of printable text (no control characters)",
        ),
    ],
)
def test_the_shape_is_checked(change, expected):
    old, new = change
    assert old in GOOD
    assert problems_of(GOOD.replace(old, new)) == [expected]


def test_a_plan_only_tightens_the_config():
    text = (
        GOOD.replace("rest_hours: 48", "rest_hours: 60")
        .replace("minutes: 3, rate_ppm: [2000, 2400]", "minutes: 3, rate_ppm: [2000, 2500]")
        .replace(
            "      - {region: calf-right, minutes: 2, rate_ppm: [1800, 2200], cue: right}\n",
            "      - {region: achilles-right, minutes: 1, rate_ppm: [1200, 1800], cue: tendon}\n"
            "      - {region: calf-left, minutes: 3.5, rate_ppm: [1800, 2200], cue: again}\n",
        )
    )
    problems, warnings = checked(text)
    assert problems == [
        "p.yaml:8: phases[0].routine[1].region = 'achilles-right': cannot be armed under "
        "achilles-tendinopathy: not_allowed: leave the tendon alone until it has calmed down",
        "p.yaml:7: phases[0].routine[0].minutes = 5.5: phase one gives calf-left 5.5 min at the "
        "rates it names: 110% of one treatment's allowance in achilles-tendinopathy; a routine "
        "must give less than 100 % (a whole allowance trips region_dose as its last target is "
        "reached)",
        "p.yaml:13: phases[1].routine[0].rate_ppm = [2000.0, 2500.0]: above calf-left's cap of "
        "2400 ppm in achilles-tendinopathy: a plan may only tighten the config",
    ]
    assert warnings == []
    rest = checked(GOOD.replace("rest_hours: 48", "rest_hours: 60"), "achilles-tendinopathy")
    assert rest == ([], [])


def test_less_rest_than_the_config_is_a_problem(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("limits: {rest_hours: 72}\n")
    loaded = parse_plan(GOOD, "p.yaml", "p")
    problems, _ = check_plan(loaded, load(str(config)), "c.yaml", TODAY)
    assert [str(p) for p in problems] == [
        "p.yaml:3: rest_hours = 48.0: less than the config's rest_hours (72 h in c.yaml): a "
        "plan may only tighten the config"
    ]


def test_a_routine_near_the_whole_allowance_is_warned_about():
    text = GOOD.replace("minutes: 3, rate_ppm", "minutes: 4.6, rate_ppm")
    assert checked(text)[1] == [
        "p.yaml:12: phases[1].routine[0].minutes = 4.6: phase two gives calf-left 4.6 min at the "
        "rates it names: 92% of one treatment's allowance in achilles-tendinopathy: the dose "
        "warning (90%) comes before the last target, and a little more trips region_dose"
    ]


def test_above_2400_ppm_a_step_counts_against_the_two_minute_allowance():
    text = GOOD.replace("minutes: 3, rate_ppm: [2000, 2400]", "minutes: 3, rate_ppm: [2000, 2600]")
    problems, _ = checked(text, "default")
    assert problems == [
        "p.yaml:12: phases[1].routine[0].minutes = 3.0: phase two gives calf-left 3 min at the "
        "rates it names: 150% of one treatment's allowance in default; a routine must give "
        "less than 100 % (a whole allowance trips region_dose as its last target is reached)"
    ]


def test_plan_check_command(tmp_path, capsys):
    assert main(["plan", "check", "achilles-calf-4-weeks"]) == 0
    out = capsys.readouterr().out
    assert "valid under achilles-tendinopathy; patient example-patient-A, from 2026-11-20" in out
    assert "phase 2 calves-full: from week 3, the last 3 next-morning pain scores <= 3/10" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("region: calf-right", "region: neck"))
    assert main(["plan", "check", str(bad), "--config", "default"]) == 2
    err = capsys.readouterr().err
    assert "gunguard: invalid plan (1 problem(s)):" in err
    assert f"{bad}:8: phases[0].routine[1].region = 'neck': cannot be armed under default: " in err
    assert main(["plan", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file, and not a shipped plan (shipped: achilles-calf-4-weeks)" in (
        capsys.readouterr().err
    )
