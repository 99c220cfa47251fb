"""Red-team cases against the treatment plans' guarantees (docs/plans.md, docs/safety.md).

Each test names the guarantee it defends and the attack it tries. The guarantees:

1. A plan never gives power: the supervisor's admission decides every arming, a trip is
   never overridden, and nothing after a trip starts the motor by itself.
2. A plan can only tighten the config: ``check_plan`` refuses any plan that loosens it.
3. Progression: held on a flare or a worse morning; every entry rule must hold.
4. Records: nothing lost, nothing invented.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gunguard.config.loader import ConfigError, load
from gunguard.core.plugins import LongPress
from gunguard.plan import progression as rules
from gunguard.plan.check import check_plan
from gunguard.plan.files import parse_plan
from gunguard.plan.runner import SessionRefused
from gunguard.sim.simulate import close_book, ledger_factory
from gunguard.store.plans import (
    COMPLETED,
    PainRecord,
    PlanHistory,
    PlanRecord,
    SessionRecord,
    StepRecord,
)
from gunguard.store.queries import open_reader

TODAY = dt.date(2026, 11, 20)
DAY = 86400.0
HEAD = "patient: test-A\nstart_date: 2026-11-20\nrest_hours: 48\n"

SHORT = parse_plan(
    HEAD
    + """\
phases:
  - name: short
    routine:
      - {region: calf-left, minutes: 0.05, rate_ppm: [1800, 2200], cue: left}
      - {region: calf-right, minutes: 0.05, rate_ppm: [1800, 2200], cue: right}
""",
    "short.yaml",
    "short",
)

#: Two phases: the second from week 1, after three mornings at most 3/10.
MORNINGS = parse_plan(
    HEAD
    + """\
phases:
  - name: one
    routine:
      - {region: calf-left, minutes: 0.05, rate_ppm: [1800, 2200], cue: left}
  - name: two
    entry: {morning_pain: {last: 3, at_most: 3}}
    routine:
      - {region: calf-left, minutes: 0.1, rate_ppm: [1800, 2200], cue: left}
""",
    "mornings.yaml",
    "mornings",
)


def _problems(text: str, cfg=None) -> list[str]:
    loaded = parse_plan(text, "x.yaml", "x")
    problems, _ = check_plan(loaded, cfg or load("achilles-tendinopathy"), "the config", TODAY)
    return [p.message for p in problems]


def _one_step(**fields) -> str:
    step = {"region": "calf-left", "minutes": 1, "rate_ppm": "[1800, 2200]", "cue": "x"}
    step.update(fields)
    inner = ", ".join(f"{k}: {v}" for k, v in step.items())
    return HEAD + "phases:\n  - name: a\n    routine:\n      - {" + inner + "}\n"


def _treat_one_session(bench, seconds: float = 4.0) -> None:
    """Start a session, treat its first step, complete it (every step confirmed)."""
    bench.session("start")
    bench.gun(ppm=2000, force_n=30)
    bench.run(seconds)
    while bench.session("next") is not None:
        bench.run(seconds)
    bench.gun(ppm=0, force_n=0)
    bench.run(2.0)


# -- 2. a plan only tightens -------------------------------------------------------------------
def test_p01_a_rate_band_is_judged_at_its_tightest_allowance(cfg):
    """Guarantee: a routine may not give a region more than one treatment's allowance at
    the rates it names. Attack: a config whose low band allows *less* time than its high
    band (1 min up to 1800 ppm, 5 min up to 2400): a 4-minute step at 1000-2400 ppm was
    judged only at its top rate (5 min: 80 %), so at the band's low end (1 min allowed) the
    plan prescribed 400 % of the allowance."""
    config = cfg(
        limits={
            "bands": [
                {"up_to_ppm": 1800, "max_minutes": 1.0},
                {"up_to_ppm": 2400, "max_minutes": 5.0},
            ]
        },
        regions={"calf-left": {"max_ppm": 2400}},
    )
    problems = _problems(_one_step(minutes=4, rate_ppm="[1000, 2400]"), config)
    assert any("400%" in p and "less than 100 %" in p for p in problems), problems
    # within the low band's minute it is fine
    assert _problems(_one_step(minutes=0.8, rate_ppm="[1000, 2400]"), config) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("minutes", "true"),
        ("rate_ppm", "[true, 2000]"),
        ("rest_hours", None),
        ("from_week", "true"),
    ],
)
def test_p02_booleans_are_not_numbers(field, value):
    """Guarantee: the plan file is read like a config (YAML 1.2 booleans, every problem
    named). Attack: ``minutes: true`` was taken as 1.0 minute, ``from_week: true`` as
    week 1, ``rest_hours: true`` as 1 h (then refused only for being below 48): a boolean
    silently became a prescription."""
    if field == "rest_hours":
        text = HEAD.replace("rest_hours: 48", "rest_hours: true") + "phases: []\n"
    elif field == "from_week":
        text = (
            HEAD
            + "phases:\n  - name: a\n    routine:\n"
            + "      - {region: calf-left, minutes: 1, rate_ppm: [1800, 2200], cue: x}\n"
            + "  - name: b\n    entry: {from_week: true}\n    routine:\n"
            + "      - {region: calf-left, minutes: 1, rate_ppm: [1800, 2200], cue: x}\n"
        )
    else:
        text = _one_step(**{field: value})
    with pytest.raises(ConfigError) as caught:
        parse_plan(text, "x.yaml", "x")
    assert any(field in str(p) for p in caught.value.problems)


def test_p03_exactly_one_allowance_is_refused_and_says_so():
    """Guarantee: a routine giving a region a whole treatment's allowance is refused (the
    dose trips region_dose as the target is reached). Attack: 2.5 + 2.5 min at <= 2400:
    refused, but the message said "a routine may give at most 100 %" while it was 100 %."""
    text = HEAD + (
        "phases:\n  - name: a\n    routine:\n"
        "      - {region: calf-left, minutes: 2.5, rate_ppm: [1800, 2200], cue: x}\n"
        "      - {region: calf-left, minutes: 2.5, rate_ppm: [1800, 2200], cue: x}\n"
    )
    (problem,) = _problems(text)
    assert "100%" in problem and "less than 100 %" in problem


def test_p04_a_region_in_warm_up_and_finish_sums_across_the_phase():
    """Guarantee: time per region sums over the routine. Attack: one region repeated as
    warm-up, work and finish, each within the allowance, the sum over it (held)."""
    text = HEAD + (
        "phases:\n  - name: a\n    routine:\n"
        "      - {region: calf-left, minutes: 1, rate_ppm: [1600, 2000], cue: warm}\n"
        "      - {region: calf-right, minutes: 1, rate_ppm: [1600, 2000], cue: other}\n"
        "      - {region: calf-left, minutes: 3.5, rate_ppm: [2000, 2400], cue: work}\n"
        "      - {region: calf-left, minutes: 0.5, rate_ppm: [1600, 2000], cue: finish}\n"
    )
    (problem,) = _problems(text)
    assert "calf-left 5 min" in problem


# -- 3. progression ------------------------------------------------------------------------------
T0 = dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp()
RECORD = PlanRecord(
    1, "mornings", MORNINGS.hash, "test-A", "2026-11-20", MORNINGS.document, "m", T0, ""
)


def _session(sid: int, day: float) -> SessionRecord:
    start = T0 + day * DAY + 18 * 3600
    step = StepRecord(sid, 1, "calf-left", 3.0, 1800, 2200, 4.0, "done", None, start, start + 9)
    return SessionRecord(sid, 1, 1, "one", start, start + 10, COMPLETED, None, (step,))


def _pain(pid: int, wall: float, value: int, timing: str, sid: int | None) -> PainRecord:
    return PainRecord(pid, wall, value, timing, sid, "test")


def test_p05_one_morning_entered_three_times_is_one_morning():
    """Guarantee: ``morning_pain: {last: 3, at_most: 3}`` needs the last three *mornings*
    at most 3/10. Attack: the same morning's score typed three times (07:30, 07:31,
    07:32) satisfied "the last 3 next-morning scores" after a single night."""
    day1 = T0 + 1 * DAY + 7.5 * 3600
    pains = [_pain(i + 1, day1 + 60 * i, 1, "morning", 1) for i in range(3)]
    history = PlanHistory(plans=(RECORD,), sessions=(_session(1, 0),), pains=tuple(pains))
    decision = rules.decide(MORNINGS.plan, "mornings", history, T0 + 2 * DAY + 18 * 3600)
    assert decision.to_phase == 1, "one morning is not three"
    assert decision.unmet == ("1 next-morning score(s) so far; the last 3 are needed",)


def test_p06_a_worse_morning_entered_twice_still_holds():
    """Guarantee: progression is held while the latest morning is worse than the previous
    one. Attack: the worse morning (5 after 2) typed a second time: the latest score (5)
    was compared with the one before it (the same 5), and the hold was released."""
    pains = [
        _pain(1, T0 + 1 * DAY + 7.5 * 3600, 2, "morning", 1),
        _pain(2, T0 + 2 * DAY + 7.5 * 3600, 5, "morning", 1),
        _pain(3, T0 + 2 * DAY + 7.6 * 3600, 5, "morning", 1),
    ]
    history = PlanHistory(plans=(RECORD,), sessions=(_session(1, 0),), pains=tuple(pains))
    reasons = rules.hold_reasons(history, list(history.sessions), T0)
    assert reasons and "5/10" in reasons[0] and "2/10" in reasons[0]


def test_p07_a_second_after_score_does_not_hide_a_flare():
    """Guarantee: held when pain after the latest session exceeds pain before it by more
    than 2. Attack: after 7 (before 2: a flare), then a second, lower "after" (3): only
    the last one counted, and the flare was forgotten."""
    start = T0 + 18 * 3600
    pains = [
        _pain(1, start - 60, 2, "before", 1),
        _pain(2, start + 60, 7, "after", 1),
        _pain(3, start + 3600, 3, "after", 1),
    ]
    history = PlanHistory(plans=(RECORD,), sessions=(_session(1, 0),), pains=tuple(pains))
    reasons = rules.hold_reasons(history, list(history.sessions), T0)
    assert reasons and "(7/10)" in reasons[0]


def _oracle_held(befores, afters, mornings) -> bool:
    """docs/plans.md's rule, written directly: a flare (the worst after more than 2 above
    the lowest before, when both were given), or the latest morning worse than the
    previous morning (entries less than 12 h apart are one morning, its worst score)."""
    flare = bool(befores and afters) and max(afters) - min(befores) > 2
    days: list[list[int]] = []
    first: float | None = None
    for wall, value in sorted(mornings):
        if first is None or wall - first >= 12 * 3600:
            days.append([value])
            first = wall
        else:
            days[-1].append(value)
    worse = len(days) >= 2 and max(days[-1]) > max(days[-2])
    return flare or worse


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    befores=st.lists(st.integers(0, 10), max_size=3),
    afters=st.lists(st.integers(0, 10), max_size=3),
    mornings=st.lists(
        st.tuples(st.integers(0, 6 * 24 * 60), st.integers(0, 10)),
        max_size=6,
        unique_by=lambda m: m[0],
    ),
)
def test_p08_held_equals_the_documented_rule(befores, afters, mornings):
    """Property: for any scores of one session and any next-morning scores (entered in
    any order, several in one morning), ``hold_reasons`` holds exactly when the oracle
    written from docs/plans.md does."""
    start = T0 + 18 * 3600
    pains: list[PainRecord] = []
    for v in befores:
        pains.append(_pain(len(pains) + 1, start - 600 + len(pains), v, "before", 1))
    for v in afters:
        pains.append(_pain(len(pains) + 1, start + 600 + len(pains), v, "after", 1))
    walls = [(T0 + DAY + minute * 60.0, v) for minute, v in mornings]
    for wall, v in walls:  # (stored in entry order: here the generated order)
        pains.append(_pain(len(pains) + 1, wall, v, "morning", 1))
    history = PlanHistory(plans=(RECORD,), sessions=(_session(1, 0),), pains=tuple(pains))
    held = bool(rules.hold_reasons(history, list(history.sessions), T0))
    assert held == _oracle_held(befores, afters, walls)


@pytest.fixture
def store_bench(gunguard_bench, tmp_path):
    config = load("achilles-tendinopathy")
    bench = gunguard_bench(
        config, plan=MORNINGS, book_factory=ledger_factory(config, tmp_path / "h.db")
    )
    yield bench
    close_book(bench)


def test_p09_a_pain_score_on_a_clock_behind_the_records_is_refused(store_bench):
    """Guarantee: time on an untrusted clock never counts (docs/history.md: a wall clock
    behind the newest record is untrusted). Attack: the clock steps back three days and a
    worse morning is entered: stamped before the previous morning, it sorted as the older
    one and the newest evidence (a worse morning) was hidden: progression not held."""
    bench = store_bench
    _treat_one_session(bench)
    bench.run_until(1.3 * DAY)
    bench.reboot()
    bench.pain(2, "morning")
    bench.run_until(2.3 * DAY)
    bench.reboot()
    bench.step_wall(-3 * DAY)
    with pytest.raises(SessionRefused) as refused:
        bench.pain(6, "morning")
    assert refused.value.reason == "clock_untrusted"
    with pytest.raises(SessionRefused) as refused:
        bench.session("start")
    assert refused.value.reason == "clock_untrusted"
    assert [p.value for p in bench.runner.book.history().pains] == [2]
    bench.step_wall(3 * DAY)
    bench.pain(6, "morning")
    assert bench.plan_status().decision.held


# -- 1. a plan never gives power ------------------------------------------------------------
def test_p10_after_a_trip_nothing_in_a_session_starts_the_motor(gunguard_bench):
    """Guarantee: a trip is never overridden and a reset never starts the motor. Attack:
    after a trip mid-step, every session command and a long press in turn (start, next,
    long press = reset, long press again = confirm) while the trip is latched: power stays
    off until a reset *and* a new command; the reset alone arms nothing."""
    bench = gunguard_bench("achilles-tendinopathy", plan=SHORT)
    bench.session("start")
    bench.gun(ppm=2000, force_n=30)
    bench.run(1.0)
    assert bench.power_on
    bench.supervisor.trip("overforce", "test")
    bench.run(0.05)
    assert not bench.power_on
    bench.session("start")  # resume: refused trip_latched
    bench.run(0.2)
    assert not bench.power_on and bench.runner.view().state == "refused"
    bench.session("next")  # skip to step 2: refused too
    bench.run(0.2)
    assert not bench.power_on and bench.runner.view().state == "refused"
    bench.supervisor.post_intent(LongPress("test"))  # with the trip latched: a reset
    bench.run(0.5)
    assert bench.supervisor.snapshot().state == "idle", "the long press reset the trip"
    assert not bench.power_on, "a reset never arms"
    assert bench.runner.view().step == 2, "the reset is not a confirm"
    bench.run(5.0)
    assert not bench.power_on


def test_p11_a_forward_clock_step_is_no_rest_between_sessions(store_bench):
    """Guarantee: time on an untrusted clock never counts as rest. Attack: a forward
    clock step of 49 h in the same daemon run (NTP after a stale boot), seconds after a
    session: the plan's rest (wall stamps) looked over, a second session started, the
    supervisor armed its region (the same treatment continues within its gap) and the
    plan counted two treated sessions out of one treatment (min_sessions progressed on
    a wrong clock). Within one daemon run the monotonic clock now judges the rest too."""
    bench = store_bench
    _treat_one_session(bench)
    bench.step_wall(49 * 3600)
    with pytest.raises(SessionRefused) as refused:
        bench.session("start")
    assert refused.value.reason == "plan_rest"
    bench.run(1.0)
    assert not bench.power_on
    assert bench.plan_status().treated_sessions == 1
    bench.run_until(48 * 3600.0 + 30.0)  # the real 48 h: now it may start
    bench.session("start")


# -- 4. records ---------------------------------------------------------------------------------
def test_p12_step_time_equals_the_supervisors_count(store_bench):
    """Guarantee: a step's counted time is what the supervisor counted for the region
    while it was armed. Attack: confirm (``session next``) between two progress reads: the
    record kept the last 0.1 s read, not the count at the confirm. (The coast-down after
    the last disarm is counted by the supervisor, after the step: at most the 0.4 s
    ramp.)"""
    bench = store_bench
    bench.session("start")
    bench.gun(ppm=2000, force_n=30)
    bench.run(4.05)  # a confirm between two 0.1 s reads
    at_confirm = bench.supervisor.doses()["calf-left"].contact_seconds
    bench.session("next")
    bench.gun(ppm=0, force_n=0)
    bench.run(2.0)
    (step,) = bench.runner.book.history().sessions[0].steps
    assert step.done_s == pytest.approx(at_confirm, abs=0.002)
    total = bench.supervisor.doses()["calf-left"].contact_seconds
    assert 0.0 <= total - step.done_s <= 0.4


def test_p12b_a_trip_between_two_reads_keeps_the_steps_count(gunguard_bench):
    """Guarantee: as p12. Attack: a trip between two progress reads: the paused step kept
    the progress of the read before it."""
    bench = gunguard_bench("achilles-tendinopathy", plan=SHORT)
    bench.session("start")
    bench.gun(ppm=2000, force_n=30)
    bench.run(2.05)
    bench.supervisor.trip("overforce", "test")
    at_trip = bench.supervisor.doses()["calf-left"].contact_seconds
    bench.run(0.01)
    view = bench.runner.view()
    assert view.state == "paused"
    assert view.done_s == pytest.approx(at_trip, abs=0.002)


def test_p13_a_killed_daemon_keeps_the_step_counted_so_far(gunguard_bench, tmp_path):
    """Guarantee: nothing lost: a session cut by a daemon crash keeps its steps with the
    contact counted. Attack: the daemon dies (no clean stop) mid-step: the step's record
    was only ever written at its end, so the resumed step started again from 0 (the
    contact before the crash in no step), and a session closed ``interrupted`` later had
    treated nothing: the plan's rest and ``min_sessions`` did not count it."""
    config = load("achilles-tendinopathy")
    path = tmp_path / "h.db"
    bench = gunguard_bench(config, plan=MORNINGS, book_factory=ledger_factory(config, path))
    bench.session("start")
    bench.gun(ppm=2000, force_n=30)
    bench.run(2.55)
    counted = bench.supervisor.doses()["calf-left"].contact_seconds
    bench.runner.close = lambda: None  # killed: the runner records nothing more
    bench.gun(ppm=0, force_n=0)
    bench.restart()
    view = bench.runner.view()
    assert (view.step, view.state) == (1, "paused")
    assert counted - 1.0 <= view.done_s <= counted
    (session,) = bench.runner.book.history().sessions
    assert session.treated
    close_book(bench)
    with open_reader(path) as reader:
        (stored,) = reader.plan_history().sessions
    assert stored.steps[0].done_s == view.done_s and stored.outcome is None


def test_p14_a_killed_session_past_the_gap_is_interrupted_and_still_counts(
    gunguard_bench, tmp_path
):
    """Guarantee: a session interrupted by a crash is recorded ``interrupted`` with what
    it treated, and its rest counts. Attack: killed mid-step, the next daemon start past
    the treatment gap: the session was closed with no step (treated nothing), so a new
    session could start at once (only the supervisor's rest refused its steps)."""
    from gunguard.plan.runner import SessionRunner
    from gunguard.store.plans import PlanBook

    config = load("achilles-tendinopathy")
    path = tmp_path / "h.db"
    bench = gunguard_bench(config, plan=MORNINGS, book_factory=ledger_factory(config, path))
    bench.session("start")
    bench.gun(ppm=2000, force_n=30)
    bench.run(2.55)
    bench.runner.close = lambda: None  # killed
    bench.gun(ppm=0, force_n=0)
    bench.run(1.0)
    close_book(bench)
    # the next daemon, an hour later, on the same store
    with open_reader(path) as reader:
        history = reader.plan_history()
    bench.clock.step_wall(3600.0)
    runner = SessionRunner(bench.supervisor, PlanBook(history), config, bench.clock)
    (session,) = runner.book.history().sessions
    assert session.outcome == "interrupted" and session.treated
    with pytest.raises(SessionRefused) as refused:
        runner.start("test")
    assert refused.value.reason == "plan_rest"
    runner.close()
