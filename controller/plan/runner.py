"""The guided session in the running daemon (and the bench): a plug-in of the supervisor.

It walks the current phase's routine by posting ``Select`` intents, exactly as a button
does, and learns from the supervisor's events whether each region was armed or
refused; the supervisor's admission and limits decide power, always. A refused region
is announced and the session waits: it never arms anything else in its place, and it
never overrides a trip (a trip pauses the step; the person resets and resumes).

Progress is the contact the supervisor counts for the step's region while it is armed
(read by an idle-safe tick check ten times a second); at the target the person is cued
(a ``session`` event: the buzzer, the gun's WARN, the dashboard) and the session moves
on only when they confirm: ``gunguard session next``, the dashboard's ``n`` key, or a
long press with no trip latched (the ``confirm`` event,
:class:`gunguard.core.plugins.LongPress`).

It also records pain scores (``gunguard pain``) and, at each session start, the phase
decision (:mod:`gunguard.plan.progression`). Everything goes to the store through a
:class:`~gunguard.store.plans.PlanBook`.

Locking: its own lock is never held while it calls into the supervisor (only a
lock-free ``post_intent``), so the tick check (supervisor lock, then this one) cannot
deadlock with a command (this one alone, then the supervisor's).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

from gunguard.config.loader import ConfigError
from gunguard.config.schema import GunguardConfig
from gunguard.core import events
from gunguard.core.clock import Clock
from gunguard.core.events import Event
from gunguard.core.plugins import Select
from gunguard.core.supervisor import Supervisor
from gunguard.plan import progression as rules
from gunguard.plan.check import check_plan
from gunguard.plan.files import LoadedPlan, parse_plan
from gunguard.plan.session import ARMING, COUNTING, PAUSED, REFUSED, GuidedSession
from gunguard.store.plans import (
    COMPLETED,
    INTERRUPTED,
    STEP_STOPPED,
    STOPPED,
    TIMINGS,
    PainRecord,
    PlanBook,
    PlanHistory,
    PlanRecord,
    StepRecord,
)
from gunguard.store.treatments import iso

log = logging.getLogger(__name__)

#: How often the tick check reads the step's progress.
PROGRESS_S = 0.1
#: How often a counting step's progress is stored while it runs (a killed daemon loses at
#: most this much of the step's record; the ledger's own commit cadence is 0.5 s).
CHECKPOINT_S = 1.0
#: The detail of a step stored while it runs (the daemon died if it is still there).
CHECKPOINT_DETAIL = "recorded while it ran: the daemon did not record the step's end"
#: "Comfortably uncomfortable": the intensity the guidance asks for (seed 001), 0-10.
INTENSITY = (4, 6)
SOURCE = "session"


class SessionRefused(Exception):
    """A session command that cannot be done now; ``reason`` is a code, ``until`` the
    wall time from which it may be (rest, the plan's start)."""

    def __init__(self, reason: str, message: str, until: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.until = until


@dataclass(frozen=True)
class SessionView:
    """The running session for status displays (the control socket's ``session``)."""

    plan: str
    patient: str
    session: int
    phase: int
    phase_name: str
    step: int  # 1-based
    steps: int
    region: str
    state: str  # arming | active | target | refused | paused
    target_s: float
    done_s: float
    rate_min_ppm: float
    rate_max_ppm: float
    cue: str
    detail: str | None
    intensity: tuple[int, int] = INTENSITY

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "patient": self.patient,
            "session": self.session,
            "phase": self.phase,
            "phase_name": self.phase_name,
            "step": self.step,
            "steps": self.steps,
            "region": self.region,
            "state": self.state,
            "target_s": self.target_s,
            "done_s": round(self.done_s, 1),
            "rate_min_ppm": self.rate_min_ppm,
            "rate_max_ppm": self.rate_max_ppm,
            "cue": self.cue,
            "detail": self.detail,
            "intensity": list(self.intensity),
        }


class SessionRunner:
    """Guided sessions and pain scores for one supervisor."""

    def __init__(
        self,
        supervisor: Supervisor,
        book: PlanBook,
        cfg: GunguardConfig,
        clock: Clock,
        *,
        config_name: str = "the running config",
        daemon_session: int | None = None,
        treatment_gap_s: float | None = None,
    ) -> None:
        self._sup = supervisor
        self.book = book
        self._cfg = cfg
        self._clock = clock
        self._config_name = config_name
        self._daemon_session = daemon_session
        self._gap_s = treatment_gap_s or cfg.limits.treatment_gap_minutes * 60.0
        self._lock = threading.Lock()
        self._session: GuidedSession | None = None
        self._next_check = -math.inf
        self._next_checkpoint = -math.inf
        self._checkpointed: tuple[int, int, float] | None = None
        #: Monotonic time each session ended in this process: its rest is judged on this
        #: clock too (a wall clock stepped forward is no rest).
        self._ended_mono: dict[int, float] = {}
        self.loaded: LoadedPlan | None = None
        self.record: PlanRecord | None = None
        #: Why the adopted plan cannot run now (None: it can, or none is adopted).
        self.plan_problem: str | None = None
        self._closed = False
        self._load_adopted()
        self._resume_or_close_open_session()
        supervisor.add_tick_check(self._tick, idle_safe=True)
        self._unsubscribe = supervisor.bus.subscribe(self.on_event)

    # -- the plan -----------------------------------------------------------------------
    def _load_adopted(self) -> None:
        record = self.book.history().plan
        if record is None:
            return
        self.record = record
        try:
            loaded = parse_plan(
                record.document,
                f"{record.source} (adopted {iso(record.adopted_wall)})",
                record.name,
            )
            problems, _ = check_plan(loaded, self._cfg, self._config_name, self._today())
        except ConfigError as exc:
            problems = exc.problems
        if problems:
            self.plan_problem = (
                f"plan {record.name} no longer fits {self._config_name}: "
                + "; ".join(str(p) for p in problems)
            )
            log.error("%s", self.plan_problem)
            return
        self.loaded = loaded

    def _today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self._clock.wall(), dt.UTC).date()

    def adopt(self, loaded: LoadedPlan) -> PlanRecord:
        """Make ``loaded`` the plan sessions follow (kept in the store as adopted).

        Raises :class:`ConfigError` when it does not fit the running config, and
        :class:`SessionRefused` while a session runs or the store cannot be written.
        """
        problems, _ = check_plan(loaded, self._cfg, self._config_name, self._today())
        if problems:
            raise ConfigError(problems)
        fault = self.book.fault
        if fault is not None:
            raise SessionRefused("storage_fault", fault)
        with self._lock:
            current = self.record
            same = current is not None and (current.hash, current.name) == (
                loaded.hash,
                loaded.name,
            )
            if self._session is not None and not same:
                raise SessionRefused(
                    "session_running", "a session is running: stop it before adopting a plan"
                )
            if current is None or not same:
                current = self.book.adopt(
                    name=loaded.name,
                    hash=loaded.hash,
                    patient=loaded.plan.patient,
                    start_date=loaded.plan.start_date.isoformat(),
                    document=loaded.document,
                    source=loaded.source,
                    wall=self._clock.wall(),
                    config_hash=self._sup.config_tag,
                )
                log.info("adopted plan %s (%s) from %s", loaded.name, loaded.hash, loaded.source)
            self.record, self.loaded, self.plan_problem = current, loaded, None
        return current

    # -- a session left open by the daemon before ------------------------------------------
    def _resume_or_close_open_session(self) -> None:
        """A session the daemon stopped (or died) in: resumed, paused, when it is recent
        enough to continue the same treatments; otherwise closed as interrupted."""
        history = self.book.history()
        open_sessions = [s for s in history.sessions if s.ended_wall is None]
        now = self._clock.wall()
        for record in open_sessions:
            last = max([record.started_wall, *(s.ended_wall for s in record.steps)])
            loaded, plan = self.loaded, self.record
            recent = now - last < self._gap_s
            if recent and loaded is not None and plan is not None and record.plan_id == plan.id:
                phase = loaded.plan.phases[min(record.phase, len(loaded.plan.phases)) - 1]
                session = GuidedSession(record, plan.name, plan.patient, phase.routine)
                steps = {s.step: s for s in record.steps}
                if steps:
                    last_step = steps[max(steps)]
                    session.index = last_step.step - 1
                    if last_step.outcome != STEP_STOPPED:
                        session.index += 1
                    else:
                        session.carried_s = session.done_s = last_step.done_s
                        session.started_wall = last_step.started_wall
                if session.index < len(session.steps):
                    session.state = PAUSED
                    session.detail = (
                        "the daemon restarted: gunguard session start resumes this step"
                    )
                    self._session = session
                    continue
            self.book.close_session(record.id, wall=last, outcome=INTERRUPTED)

    # -- commands (any thread) ------------------------------------------------------------------
    def start(self, source: str = "cli") -> SessionView:
        """Start a session of the adopted plan, or resume the running one's step (paused or
        refused). Raises :class:`SessionRefused` when no session may start now."""
        announce: list[dict[str, Any]] = []
        with self._lock:
            session = self._session
            if session is None:
                session = self._open(announce, source)
            elif session.state in (REFUSED, PAUSED):
                log.info("%s: resume step %d (%s)", source, session.index + 1, session.step.region)
            else:
                return self._view(session)
            session.ask(self._clock.monotonic())
            self._sup.post_intent(Select(session.step.region, SOURCE))
            view = self._view(session)
        self._announce(announce)
        return view

    def _open(self, announce: list[dict[str, Any]], source: str) -> GuidedSession:
        """A new session (callers hold the lock)."""
        loaded, record = self.loaded, self.record
        if self.plan_problem is not None:
            raise SessionRefused("plan_invalid", self.plan_problem)
        if loaded is None or record is None:
            raise SessionRefused(
                "no_plan",
                "no plan adopted: gunguard session start --plan NAME (or gunguard run --plan)",
            )
        fault = self.book.fault
        if fault is not None:
            raise SessionRefused("storage_fault", fault)
        plan = loaded.plan
        now = self._clock.wall()
        history = self.book.history()
        _trusted(history, now, "a session")
        begins = rules.start_wall(plan)
        if now < begins:
            raise SessionRefused(
                "not_started", f"plan {record.name} starts on {plan.start_date.isoformat()}", begins
            )
        allowed = rules.next_session_from(plan, history)
        last = rules.latest_treated(history)
        ended = None if last is None else self._ended_mono.get(last.id)
        if ended is not None:  # ended in this process: the monotonic clock judges too
            left = plan.rest_hours * 3600.0 - (self._clock.monotonic() - ended)
            allowed = max(allowed, now + left)
        if now < allowed:
            raise SessionRefused(
                "plan_rest",
                f"plan {record.name} asks for {plan.rest_hours:g} h between sessions: the next "
                f"from {iso(allowed)}",
                allowed,
            )
        decision = rules.decide(plan, record.name, history, now)
        phase = plan.phases[decision.to_phase - 1]
        opened = self.book.open_session(
            plan_id=record.id,
            phase=decision.to_phase,
            phase_name=phase.name,
            wall=now,
            daemon_session=self._daemon_session,
        )
        self.book.decide(
            wall=now,
            session_id=opened.id,
            plan_id=record.id,
            from_phase=decision.from_phase,
            to_phase=decision.to_phase,
            held=bool(decision.held),
            reason=decision.reason(plan),
        )
        for pain in history.pains:  # "before" scores given just before it belong to it
            unlinked = pain.timing == "before" and pain.session_id is None
            if unlinked and 0.0 <= now - pain.wall <= rules.BEFORE_LINK_S:
                self.book.link_pain(pain.id, opened.id)
        log.info(
            "%s: session %d of plan %s, phase %d (%s): %s",
            source,
            opened.id,
            record.name,
            decision.to_phase,
            phase.name,
            decision.reason(plan),
        )
        announce.append(
            {
                "action": "started",
                "session": opened.id,
                "plan": record.name,
                "phase": decision.to_phase,
                "phase_name": phase.name,
                "steps": len(phase.routine),
            }
        )
        if decision.advanced:
            announce.append(
                {"action": "advanced", "phase": decision.to_phase, "detail": decision.reason(plan)}
            )
        if decision.held:
            announce.append(
                {"action": "held", "phase": decision.to_phase, "detail": "; ".join(decision.held)}
            )
        session = GuidedSession(opened, record.name, plan.patient, phase.routine)
        self._session = session
        return session

    def next(self, source: str = "cli") -> SessionView | None:
        """Confirm: end the current step and ask for the next one's region (after the last,
        the session is completed and the region disarmed). None when completed."""
        announce: list[dict[str, Any]] = []
        doses = self._sup.doses()  # (before this lock: see the module's locking note)
        with self._lock:
            session = self._session
            if session is None:
                raise SessionRefused("no_session", "no session is running: gunguard session start")
            _catch_up(session, doses)
            ended = session.record_step(self._clock.wall())
            self.book.step(ended)
            announce.append(_step_done(ended))
            log.info("%s: step %d %s: %s", source, ended.step, ended.region, ended.outcome)
            if session.last:
                self._finish(session, COMPLETED, announce)
                view = None
            else:
                session.advance()
                session.ask(self._clock.monotonic())
                self._sup.post_intent(Select(session.step.region, SOURCE))
                view = self._view(session)
        self._announce(announce)
        return view

    def stop(self, source: str = "cli") -> None:
        """End the session now (the current step is recorded as stopped); disarms."""
        announce: list[dict[str, Any]] = []
        doses = self._sup.doses()
        with self._lock:
            session = self._session
            if session is None:
                raise SessionRefused("no_session", "no session is running")
            _catch_up(session, doses)
            ended = session.record_step(self._clock.wall(), STEP_STOPPED)
            self.book.step(ended)
            announce.append(_step_done(ended))
            log.info("%s: session %d stopped", source, session.record.id)
            self._finish(session, STOPPED, announce)
        self._announce(announce)

    def _finish(self, session: GuidedSession, outcome: str, announce: list[dict[str, Any]]) -> None:
        """Close the session and disarm (callers hold the lock)."""
        self.book.close_session(session.record.id, wall=self._clock.wall(), outcome=outcome)
        self._ended_mono[session.record.id] = self._clock.monotonic()
        self._session = None
        self._sup.post_intent(Select(None, SOURCE))
        announce.append({"action": outcome, "session": session.record.id})

    def pain(self, value: int, when: str | None = None, source: str = "cli") -> PainRecord:
        """Record a pain score (0-10). ``when`` may be left out while a session runs:
        before until it has counted any contact, after from then on."""
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
            raise ValueError(f"pain {value!r}: a whole number from 0 to 10")
        if when is not None and when not in TIMINGS:
            raise ValueError(f"when {when!r}: one of {', '.join(TIMINGS)}")
        fault = self.book.fault
        if fault is not None:
            raise SessionRefused("storage_fault", fault)
        with self._lock:
            session = self._session
            running = None if session is None else session.record.id
            if when is None:
                if session is None:
                    raise ValueError(
                        "no session is running: say when the pain is from "
                        "(--when before, after or morning)"
                    )
                counted = session.done_s > 0.0 or session.index > 0
                when = "after" if counted else "before"
            wall = self._clock.wall()
            history = self.book.history()
            _trusted(history, wall, "a pain score")
            linked = rules.session_for_pain(when, history, wall, running)
            record = self.book.add_pain(
                wall=wall, value=value, timing=when, session_id=linked, source=source
            )
        log.info("%s: pain %d/10 (%s), session %s", source, value, when, linked)
        self._sup.announce(events.PAIN, value=value, when=when, session=linked)
        return record

    # -- what the supervisor did (an event listener: outside its lock) -------------------------
    def on_event(self, event: Event) -> None:
        kind = event.kind
        if kind == events.CONFIRM:
            self._confirmed(str(event.fields.get("source", "long press")))
            return
        if kind not in (events.REGION, events.REFUSED, events.TRIP) or self._session is None:
            return
        region = event.fields.get("region")
        doses = self._sup.doses()
        contact = 0.0
        if kind == events.REGION and region is not None:
            dose = doses.get(region)
            contact = dose.contact_seconds if dose is not None else 0.0
        announce: list[dict[str, Any]] = []
        with self._lock:
            session = self._session
            if session is None:
                return
            step = session.step
            fields = {"step": session.index + 1, "region": step.region}
            if kind == events.REGION and event.t >= session.posted_at:
                if session.state == ARMING and region == step.region:
                    session.armed(contact, self._clock.wall())
                    announce.append(
                        {"action": "armed", **fields, "target_s": step.target_s, "cue": step.cue}
                    )
                elif session.state in COUNTING and region != step.region:
                    _catch_up(session, doses)
                    why = "disarmed" if region is None else f"{region} was selected instead"
                    session.paused(why)
                    announce.append({"action": "paused", **fields, "detail": why})
            elif kind == events.REFUSED and event.t >= session.posted_at:
                if session.state == ARMING and region == step.region:
                    why = f"{event.fields.get('reason')}: {event.fields.get('detail', '')}"
                    session.refused(why)
                    announce.append(
                        {
                            "action": "refused",
                            **fields,
                            "reason": event.fields.get("reason"),
                            "detail": "the supervisor refused the step's region; nothing else "
                            "is armed: session next skips the step, session start asks again",
                        }
                    )
            elif kind == events.TRIP and session.state in COUNTING:
                _catch_up(session, doses)
                why = f"tripped: {event.fields.get('reason')}"
                session.paused(why)
                announce.append({"action": "paused", **fields, "detail": why})
        self._announce(announce)

    def _confirmed(self, source: str) -> None:
        """A long press with no trip latched: the session moves on, or one starts."""
        try:
            if self._session is not None:
                self.next(source)
            elif self.loaded is not None:
                self.start(source)
        except SessionRefused as exc:
            self._announce(
                [
                    {
                        "action": "rejected",
                        "command": "long press",
                        "reason": exc.reason,
                        "detail": exc.message,
                    }
                ]
            )

    # -- progress (a tick check, idle-safe: it only acts while a step is armed) ------------------
    def _tick(self, now: float) -> None:
        if now < self._next_check:
            return None
        self._next_check = now + PROGRESS_S
        session = self._session
        if session is None or session.state not in COUNTING:
            return None
        dose = self._sup.doses().get(session.step.region)
        contact = dose.contact_seconds if dose is not None else 0.0
        with self._lock:
            if self._session is not session:
                return None
            reached = session.progress(contact)
            self._checkpoint(session, now)
            if not reached:
                return None
            step = session.step
            cue = {
                "action": "target",
                "step": session.index + 1,
                "region": step.region,
                "done_s": round(session.done_s, 1),
                "target_s": step.target_s,
                "detail": "target reached: confirm to move on (long press, or session next)",
            }
        self._sup.announce(events.SESSION, **cue)
        return None

    def _checkpoint(self, session: GuidedSession, now: float) -> None:
        """Store the counting step's progress now and then (callers hold the lock), so a
        killed daemon leaves it recorded (``stopped``): resumed or closed at the next
        start with what was counted."""
        key = (session.record.id, session.index, session.done_s)
        if now < self._next_checkpoint or session.done_s <= 0.0 or key == self._checkpointed:
            return
        self._next_checkpoint = now + CHECKPOINT_S
        self._checkpointed = key
        record = session.record_step(self._clock.wall(), STEP_STOPPED)
        self.book.step(dataclasses.replace(record, detail=CHECKPOINT_DETAIL))

    # -- views ----------------------------------------------------------------------------------
    def view(self) -> SessionView | None:
        with self._lock:
            session = self._session
            return None if session is None else self._view(session)

    def _view(self, session: GuidedSession) -> SessionView:
        step = session.step
        record = session.record
        return SessionView(
            plan=session.plan_name,
            patient=session.patient,
            session=record.id,
            phase=record.phase,
            phase_name=record.phase_name,
            step=session.index + 1,
            steps=len(session.steps),
            region=step.region,
            state=session.state,
            target_s=step.target_s,
            done_s=session.done_s,
            rate_min_ppm=step.rate_ppm[0],
            rate_max_ppm=step.rate_ppm[1],
            cue=step.cue,
            detail=session.detail,
        )

    def _announce(self, items: list[dict[str, Any]]) -> None:
        for fields in items:
            self._sup.announce(events.SESSION, **fields)

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """The daemon stops: the current step is recorded (stopped), the session stays open
        so the next start can resume it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        doses = self._sup.doses()
        with self._lock:
            session = self._session
            if session is not None:
                _catch_up(session, doses)
                if session.state in COUNTING:
                    session.paused("the daemon stopped")
                self.book.step(session.record_step(self._clock.wall(), STEP_STOPPED))
            self._session = None


def _catch_up(session: GuidedSession, doses: dict[str, Any]) -> None:
    """The step's progress to the supervisor's count now (the tick check reads it only
    every :data:`PROGRESS_S`): what a step records is what the supervisor counted."""
    dose = doses.get(session.step.region)
    session.progress(dose.contact_seconds if dose is not None else 0.0)


def _trusted(history: PlanHistory, now: float, what: str) -> None:
    """Refuse ``clock_untrusted`` when the wall clock reads earlier than a plan record."""
    newest = history.newest_wall
    if newest is not None and now < newest:
        raise SessionRefused(
            "clock_untrusted",
            f"the wall clock reads {iso(now)}, earlier than the newest plan record "
            f"({iso(newest)}): it stepped back, or the Pi started without a synchronised "
            f"time; {what} cannot be placed on this clock. Synchronise it (NTP) and try "
            f"again once it reads {iso(newest)} or later",
            newest,
        )


def _step_done(ended: StepRecord) -> dict[str, Any]:
    return {
        "action": "step_done",
        "step": ended.step,
        "region": ended.region,
        "outcome": ended.outcome,
        "done_s": ended.done_s,
        "target_s": ended.target_s,
    }
