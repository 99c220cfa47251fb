"""Guided sessions in virtual time: the supervisor decides every arming; the session asks,
waits, cues, and moves on only when told. Pain scores; the records in the store."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from gunguard.core.plugins import LongPress
from gunguard.plan.files import parse_plan
from gunguard.plan.runner import CHECKPOINT_DETAIL, SessionRefused
from gunguard.sim.simulate import close_book, ledger_factory
from gunguard.store.queries import open_reader

SHORT = """\
patient: test-A
start_date: 2026-11-20
rest_hours: 48
phases:
  - name: short
    routine:
      - {region: calf-left, minutes: 0.05, rate_ppm: [1800, 2200], cue: left}
      - {region: calf-right, minutes: 0.05, rate_ppm: [1800, 2200], cue: right}
"""
PLAN = parse_plan(SHORT, "short.yaml", "short")


def actions(bench, since: int = 0) -> list[tuple]:
    """The session events after ``since``: (action, step, region)."""
    return [
        (e.fields["action"], e.fields.get("step"), e.fields.get("region"))
        for e in bench.events[since:]
        if e.kind == "session"
    ]


@pytest.fixture
def bench(gunguard_bench):
    return gunguard_bench("achilles-tendinopathy", plan=PLAN)


def test_a_session_walks_the_routine_and_waits_for_each_confirm(bench):
    view = bench.session("start")
    assert (view.step, view.region, view.state) == (1, "calf-left", "arming")
    assert not bench.power_on, "asked for, not armed: the supervisor answers at its next tick"
    bench.gun(ppm=2000, force_n=30)
    bench.run(0.01)
    assert bench.supervisor.region == "calf-left" and bench.power_on
    bench.run(10.0)  # far past the 3 s target: the session waits for the person
    target = bench.first("session", action="target")
    assert target is not None and 3.0 < target.t < 3.8  # 3 s of contact after the spin-up
    assert bench.supervisor.region == "calf-left" and bench.power_on
    assert bench.runner.view().state == "target"
    bench.session("next")
    bench.run(5.0)
    assert bench.supervisor.region == "calf-right"
    assert bench.session("next") is None  # the last confirm: completed
    bench.run(0.01)
    assert bench.supervisor.region is None and not bench.power_on
    assert actions(bench) == [
        ("started", None, None),
        ("armed", 1, "calf-left"),
        ("target", 1, "calf-left"),
        ("step_done", 1, "calf-left"),
        ("armed", 2, "calf-right"),
        ("target", 2, "calf-right"),
        ("step_done", 2, "calf-right"),
        ("completed", None, None),
    ]
    (record,) = bench.runner.book.history().sessions
    assert record.outcome == "completed"
    assert [(s.step, s.region, s.outcome) for s in record.steps] == [
        (1, "calf-left", "done"),
        (2, "calf-right", "done"),
    ]
    left = bench.supervisor.doses()
    assert record.steps[1].done_s == pytest.approx(left["calf-right"].contact_seconds, abs=0.11)


def test_progress_is_counted_contact_not_time(bench):
    bench.session("start")
    bench.gun(ppm=2000, force_n=0)  # percussing in the air: no contact, no progress
    bench.run(10.0)
    view = bench.runner.view()
    assert (view.state, view.done_s) == ("active", 0.0)
    assert bench.first("session", action="target") is None


def test_a_refused_step_arms_nothing_else_and_a_trip_is_never_overridden(bench):
    bench.gun(ppm=2000, force_n=30)
    bench.supervisor.trip("overforce", "test")
    bench.session("start")
    bench.run(0.5)
    view = bench.runner.view()
    assert view.state == "refused" and view.detail.startswith("trip_latched")
    assert bench.supervisor.region is None and not bench.power_on
    refused = bench.first("session", action="refused")
    assert refused.fields["reason"] == "trip_latched"
    bench.session("next")  # skip it: the next step is asked for, and refused too
    bench.run(0.5)
    assert bench.runner.view().state == "refused" and not bench.power_on
    assert bench.reset() == ["overforce"]
    bench.run(0.5)
    assert not bench.power_on, "a reset never arms; the session waits"
    bench.session("start")  # ask again for the step: now admitted
    bench.run(0.5)
    assert bench.supervisor.region == "calf-right" and bench.power_on
    (record,) = bench.runner.book.history().sessions
    assert [(s.step, s.outcome) for s in bench.runner.book.history().sessions[0].steps] == [
        (1, "refused"),
        (2, "stopped"),  # stored while it runs (every second), in case the daemon dies
    ]
    assert record.steps[1].detail == CHECKPOINT_DETAIL
    assert record.outcome is None  # still running


def test_a_trip_pauses_the_step_and_its_progress_is_kept(bench):
    bench.session("start")
    bench.gun(ppm=2000, force_n=30)
    bench.run(2.0)
    bench.gun(force_n=150)  # too hard: overforce
    bench.run(1.0)
    assert bench.trips() == ["overforce"]
    view = bench.runner.view()
    assert view.state == "paused" and view.detail == "tripped: overforce"
    kept = view.done_s
    assert 1.0 < kept < 3.0
    bench.gun(force_n=30)
    bench.run(1.0)  # eased off: a second under the limit before the region arms again
    bench.reset()
    bench.session("start")  # resume the step
    bench.run(0.5)
    assert bench.power_on and bench.runner.view().state == "active"
    bench.run(3.0)
    assert bench.runner.view().state == "target"


def test_a_long_press_resets_a_trip_else_confirms(bench):
    bench.session("start")
    bench.gun(ppm=2000, force_n=30)
    bench.run(4.0)
    assert bench.runner.view().state == "target"
    bench.supervisor.trip("overspeed", "test")
    bench.supervisor.post_intent(LongPress("test"))
    bench.run(0.01)
    assert bench.supervisor.latched is None
    assert bench.runner.view().step == 1, "a long press that resets does not move on"
    bench.supervisor.post_intent(LongPress("test"))
    bench.run(0.01)
    assert bench.first("confirm", source="test") is not None
    assert bench.runner.view().step == 2
    bench.run(0.01)
    assert bench.supervisor.region == "calf-right"


def test_a_long_press_starts_a_session_and_says_when_it_cannot(bench):
    bench.supervisor.post_intent(LongPress("test"))
    bench.run(0.01)
    assert bench.runner.view() is not None and bench.runner.view().step == 1
    bench.session("stop")
    bench.run(0.01)
    assert bench.supervisor.region is None
    bench.supervisor.post_intent(LongPress("test"))  # nothing was treated: no rest needed
    bench.run(0.01)
    bench.gun(ppm=2000, force_n=30)
    bench.run(1.0)
    bench.session("stop")
    bench.supervisor.post_intent(LongPress("test"))
    bench.run(0.01)
    rejected = bench.first("session", action="rejected")
    assert rejected is not None and rejected.fields["reason"] == "plan_rest"
    assert bench.supervisor.region is None


def test_stop_disarms_and_records_the_step(bench):
    bench.session("start")
    bench.gun(ppm=2000, force_n=30)
    bench.run(1.5)
    bench.session("stop")
    bench.run(0.01)
    assert bench.supervisor.region is None and not bench.power_on
    (record,) = bench.runner.book.history().sessions
    assert record.outcome == "stopped"
    assert [(s.step, s.outcome) for s in record.steps] == [(1, "stopped")]
    with pytest.raises(SessionRefused) as refused:
        bench.session("next")
    assert refused.value.reason == "no_session"
    with pytest.raises(SessionRefused) as rest:
        bench.session("start")
    assert rest.value.reason == "plan_rest"
    assert rest.value.until == pytest.approx(bench.clock.wall() + 48 * 3600, abs=2.0)


def test_pain_scores_are_checked_and_linked(bench):
    with pytest.raises(ValueError, match="a whole number from 0 to 10"):
        bench.pain(11, "before")
    with pytest.raises(ValueError, match="no session is running: say when"):
        bench.pain(3)
    early = bench.pain(2, "before")
    assert early.session_id is None
    bench.session("start")
    assert bench.pain(3).timing == "before"  # running, nothing counted yet
    bench.gun(ppm=2000, force_n=30)
    bench.run(4.0)
    during = bench.pain(5)
    assert (during.timing, during.session_id) == ("after", 1)
    history = bench.runner.book.history()
    assert [(p.value, p.timing, p.session_id) for p in history.pains] == [
        (2, "before", 1),  # linked when the session started, given just before it
        (3, "before", 1),
        (5, "after", 1),
    ]
    assert [e.fields["value"] for e in bench.events if e.kind == "pain"] == [2, 3, 5]


def test_plan_records_survive_reboots_in_the_store(tmp_path, gunguard_bench, cfg):
    config = cfg(regions={"calf-left": {"max_ppm": 2400}, "calf-right": {"max_ppm": 2400}})
    path = tmp_path / "history.db"
    bench = gunguard_bench(config, plan=PLAN, book_factory=ledger_factory(config, path))
    bench.pain(2, "before")
    bench.session("start")
    bench.gun(ppm=2000, force_n=30)
    bench.run(1.5)
    bench.restart()  # the daemon restarts mid-step: the step is kept, the session resumes
    view = bench.runner.view()
    assert (view.step, view.state) == (1, "paused")
    assert view.detail == "the daemon restarted: gunguard session start resumes this step"
    bench.session("start")
    bench.run(3.0)
    assert bench.runner.view().state == "target"
    bench.session("next")
    bench.run(4.0)
    bench.session("next")
    bench.gun(ppm=0, force_n=0)
    bench.run(60.0)
    bench.pain(3, "after")
    bench.run_until(86400.0)
    bench.reboot()
    bench.pain(2, "morning")
    bench.run(10.0)
    assert bench.skipped_ticks > 80_000_000, "a day with nothing armed is skipped, not ticked"
    close_book(bench)  # (the fixture closes the bench)
    with open_reader(path) as reader:
        history = reader.plan_history()
    (plan,) = history.plans
    assert (plan.name, plan.hash, plan.patient, plan.start_date) == (
        "short",
        PLAN.hash,
        "test-A",
        "2026-11-20",
    )
    assert plan.document == SHORT
    (session,) = history.sessions
    assert (session.phase, session.phase_name, session.outcome) == (1, "short", "completed")
    assert [(s.step, s.region, s.outcome) for s in session.steps] == [
        (1, "calf-left", "done"),
        (2, "calf-right", "done"),
    ]
    assert session.steps[0].done_s >= 3.0
    assert [(p.value, p.timing, p.session_id) for p in history.pains] == [
        (2, "before", 1),
        (3, "after", 1),
        (2, "morning", 1),
    ]
    (decision,) = history.decisions
    assert (decision.from_phase, decision.to_phase, decision.held) == (1, 1, False)
    assert decision.reason == "stays in phase 1: phase 1 is the plan's last"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (4,)
