"""The plan's rules as pure functions: phases, held progression, rest, pain links, what is due."""

from __future__ import annotations

import datetime as dt

from gunguard.plan import progression as rules
from gunguard.plan.files import parse_plan
from gunguard.store.plans import (
    COMPLETED,
    PainRecord,
    PlanHistory,
    PlanRecord,
    SessionRecord,
    StepRecord,
)

PLAN = parse_plan(
    """\
patient: test-A
start_date: 2026-11-20
rest_hours: 48
phases:
  - name: one
    routine:
      - {region: calf-left, minutes: 2, rate_ppm: [1800, 2200], cue: left}
  - name: two
    entry: {from_week: 3, morning_pain: {last: 3, at_most: 3}}
    routine:
      - {region: calf-left, minutes: 3, rate_ppm: [2000, 2400], cue: left}
  - name: three
    entry: {min_sessions: 2}
    routine:
      - {region: calf-left, minutes: 3, rate_ppm: [2000, 2400], cue: left}
""",
    "p.yaml",
    "p",
)
DAY = 86400.0
T0 = dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp()  # 00:00 of the start date
RECORD = PlanRecord(1, "p", PLAN.hash, "test-A", "2026-11-20", PLAN.document, "p.yaml", T0, "")


def session(sid: int, day: float, phase: int = 1, treated: bool = True) -> SessionRecord:
    start = T0 + day * DAY + 18 * 3600
    step = StepRecord(
        sid,
        1,
        "calf-left",
        120.0,
        1800,
        2200,
        121.0 if treated else 0.0,
        "done",
        None,
        start,
        start + 130,
    )
    return SessionRecord(sid, 1, phase, "one", start, start + 130, COMPLETED, None, (step,))


def pain(pid: int, day: float, hour: float, value: int, timing: str, sid: int | None) -> PainRecord:
    return PainRecord(pid, T0 + day * DAY + hour * 3600, value, timing, sid, "test")


def history(sessions=(), pains=()) -> PlanHistory:
    return PlanHistory(plans=(RECORD,), sessions=tuple(sessions), pains=tuple(pains))


def good_weeks() -> tuple[list[SessionRecord], list[PainRecord]]:
    """Six sessions in weeks 1-2, mornings 3, 3, 2, 2, 2, 2 (never worse)."""
    sessions = [session(i + 1, 2 * i) for i in range(6)]
    mornings = [3, 3, 2, 2, 2, 2]
    pains = [pain(i + 1, 2 * i + 1, 7.5, v, "morning", i + 1) for i, v in enumerate(mornings)]
    return sessions, pains


def test_weeks_count_from_the_start_date():
    plan = PLAN.plan
    assert rules.week_of(plan, T0 - 1) == 0
    assert rules.week_of(plan, T0) == 1
    assert rules.week_of(plan, T0 + 13 * DAY + 23 * 3600) == 2
    assert rules.week_of(plan, T0 + 14 * DAY) == 3


def test_the_next_phase_needs_its_week_and_its_morning_scores():
    sessions, pains = good_weeks()
    early = rules.decide(PLAN.plan, "p", history(sessions, pains), T0 + 12 * DAY + 18 * 3600)
    assert (early.from_phase, early.to_phase, early.held) == (1, 1, ())
    assert early.unmet == ("week 2 of the plan; the next phase from week 3",)
    due = rules.decide(PLAN.plan, "p", history(sessions, pains), T0 + 14 * DAY + 18 * 3600)
    assert due.advanced and due.to_phase == 2 and due.unmet == () and due.held == ()
    assert due.reason(PLAN.plan) == (
        "entered phase 2 (from week 3, the last 3 next-morning pain scores <= 3/10, unless "
        "progression is held: met)"
    )
    high = [*pains[:-1], pain(9, 11, 7.5, 4, "morning", 6)]  # 4/10: over the rule's 3
    stays = rules.decide(PLAN.plan, "p", history(sessions, high), T0 + 14 * DAY + 18 * 3600)
    assert stays.to_phase == 1
    assert stays.unmet == ("the last 3 next-morning scores are 2, 2, 4; each must be <= 3/10",)
    few = rules.decide(PLAN.plan, "p", history(sessions, pains[:2]), T0 + 14 * DAY + 18 * 3600)
    assert few.unmet == ("2 next-morning score(s) so far; the last 3 are needed",)


def test_one_bad_morning_holds_progression_until_a_better_one():
    sessions, pains = good_weeks()
    worse = [*pains, pain(7, 13, 7.5, 3, "morning", 6)]  # 3 after 2: still <= 3, but worse
    held = rules.decide(PLAN.plan, "p", history(sessions, worse), T0 + 14 * DAY + 18 * 3600)
    assert held.unmet == () and held.to_phase == 1 and not held.advanced
    assert held.held == (
        "next-morning pain 3/10 (2026-12-03T07:30:00Z) is worse than the previous morning's 2/10",
    )
    assert held.reason(PLAN.plan) == (
        "stays in phase 1: progression held: next-morning pain 3/10 (2026-12-03T07:30:00Z) is "
        "worse than the previous morning's 2/10"
    )
    better = [*worse, pain(8, 14, 7.5, 2, "morning", 6)]
    released = rules.decide(PLAN.plan, "p", history(sessions, better), T0 + 14 * DAY + 18 * 3600)
    assert released.advanced and released.held == ()


def test_pain_after_more_than_two_above_pain_before_holds_progression():
    sessions, pains = good_weeks()
    last = sessions[-1].id
    flare = [*pains, pain(20, 10, 17.9, 2, "before", last), pain(21, 10, 18.2, 5, "after", last)]
    decision = rules.decide(PLAN.plan, "p", history(sessions, flare), T0 + 14 * DAY + 18 * 3600)
    assert decision.to_phase == 1
    assert decision.held == (
        "pain after the session of 2026-11-30T18:00:00Z (5/10) exceeds pain before it (2/10) "
        "by more than 2",
    )
    two = [*pains, pain(20, 10, 17.9, 2, "before", last), pain(21, 10, 18.2, 4, "after", last)]
    assert rules.decide(PLAN.plan, "p", history(sessions, two), T0 + 14 * DAY).held == ()


def test_phases_never_go_back_and_the_last_one_stays():
    sessions = [session(1, 0, phase=2), session(2, 2, phase=2)]
    decision = rules.decide(PLAN.plan, "p", history(sessions), T0 + 4 * DAY)
    assert decision.advanced and decision.to_phase == 3  # min_sessions: 2 in phase 2
    last = rules.decide(PLAN.plan, "p", history([*sessions, session(3, 4, phase=3)]), T0 + 6 * DAY)
    assert last.last_phase and last.to_phase == 3
    assert last.reason(PLAN.plan) == "stays in phase 3: phase 3 is the plan's last"
    untreated = [session(1, 0, phase=2), session(2, 2, phase=2, treated=False)]
    short = rules.decide(PLAN.plan, "p", history(untreated), T0 + 4 * DAY)
    assert short.unmet == ("1 treated session(s) in phase 2; 2 needed",)


def test_rest_counts_from_the_end_of_the_last_treated_session_and_the_start_date():
    assert rules.next_session_from(PLAN.plan, history()) == T0
    first = session(1, 0)
    assert rules.next_session_from(PLAN.plan, history([first])) == first.ended_wall + 48 * 3600
    nothing = session(2, 3, treated=False)
    assert rules.next_session_from(PLAN.plan, history([first, nothing])) == (
        first.ended_wall + 48 * 3600
    )


def test_pain_scores_belong_to_the_session_they_speak_of():
    sessions = [session(1, 0)]
    h = history(sessions)
    end = sessions[0].ended_wall
    assert end is not None
    assert rules.session_for_pain("before", h, end + 60, running=None) is None
    assert rules.session_for_pain("before", h, end + 60, running=7) == 7
    assert rules.session_for_pain("after", h, end + 60, running=None) == 1
    assert rules.session_for_pain("after", h, end + 13 * 3600, running=None) is None
    assert rules.session_for_pain("morning", h, end + 13 * 3600, running=None) == 1


def test_status_says_what_is_due():
    sessions = [session(1, 0)]
    end = sessions[0].ended_wall
    assert end is not None
    found = rules.plan_status(PLAN.plan, RECORD, history(sessions), end + 600)
    assert [(d.what, d.detail) for d in found.due] == [
        ("pain_after", "pain after the last session: gunguard pain N --when after"),
        (
            "pain_morning",
            "next-morning pain: gunguard pain N --when morning (from 2026-11-21T02:02:10Z)",
        ),
        ("session", "session in phase 1 (one) from 2026-11-22T18:02:10Z"),
    ]
    data = found.as_dict(PLAN.plan)
    assert data["format"] == "gunguard-plan-status/1"
    assert data["next_session"]["from"] == "2026-11-22T18:02:10Z"
    assert data["next_session"]["allowed_now"] is False
    assert data["progression"] == {
        "held": False,
        "why": [],
        "next_phase": {
            "number": 2,
            "name": "two",
            "entry": "from week 3, the last 3 next-morning pain scores <= 3/10, unless "
            "progression is held",
            "unmet": [
                "week 1 of the plan; the next phase from week 3",
                "0 next-morning score(s) so far; the last 3 are needed",
            ],
        },
    }
