"""The plan's rules over what the store holds: which phase, when the next session, what
is due, and when progression is held. Pure functions of a plan, the records and a time.

**Phases.** A plan runs its phases in order and never goes back. At each session start
the next phase is entered when its entry rule holds (from a week, after enough treated
sessions, the last next-morning scores low enough) and progression is not held.

**Held.** Progression is held while the newest evidence says the treatment irritates:
pain after the latest session (that has both scores; the worst after, the lowest
before) exceeds pain before it by more than :data:`FLARE_RISE`, or the latest morning's
score is worse than the previous morning's (scores less than :data:`SAME_MORNING_S`
apart are one morning, its worst). A later session or morning that no longer says so releases it.

**Rest.** A session may start ``rest_hours`` after the end of the latest session that
treated anything (counted contact), and not before the plan's start date. The
supervisor's own rest per region still applies to every step.

Times are wall seconds (UTC); weeks count from ``start_date`` (week 1 is its first
seven days).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from gunguard.plan.check import entry_text
from gunguard.plan.schema import EntryRule, Plan
from gunguard.store.plans import PainRecord, PlanHistory, PlanRecord, SessionRecord
from gunguard.store.treatments import iso

#: Pain after a session more than this above pain before it holds progression.
FLARE_RISE = 2
#: A next-morning score is due from this long after a session ends (a night).
MORNING_DUE_S = 8 * 3600.0
#: A "before" score entered this long before a session starts belongs to it.
BEFORE_LINK_S = 2 * 3600.0
#: An "after" score entered this long after a session ends still belongs to it.
AFTER_LINK_S = 12 * 3600.0
#: Next-morning scores less than this after the first score of a morning are the same
#: morning (typed again, or corrected): the morning's score is the worst of them.
SAME_MORNING_S = 12 * 3600.0


def day_of(wall: float) -> dt.date:
    return dt.datetime.fromtimestamp(wall, dt.UTC).date()


def start_wall(plan: Plan) -> float:
    """Midnight (UTC) of the plan's start date."""
    return dt.datetime.combine(plan.start_date, dt.time(), dt.UTC).timestamp()


def week_of(plan: Plan, wall: float) -> int:
    """The plan's week at ``wall`` (1 from the start date; 0 before it)."""
    days = (day_of(wall) - plan.start_date).days
    return 0 if days < 0 else days // 7 + 1


def sessions_of(history: PlanHistory, name: str) -> list[SessionRecord]:
    """The sessions of every adoption of the plan called ``name``: editing a plan and
    adopting it again carries its phase and its sessions on."""
    ids = {p.id for p in history.plans if p.name == name}
    return [s for s in history.sessions if s.plan_id in ids]


def first_adopted(history: PlanHistory, name: str) -> float | None:
    walls = [p.adopted_wall for p in history.plans if p.name == name]
    return min(walls) if walls else None


def mornings(history: PlanHistory, since: float | None) -> list[PainRecord]:
    """One score per morning since ``since``, in time order: scores less than
    :data:`SAME_MORNING_S` after a morning's first are that morning, and its score is the
    worst of them (a score typed twice is one morning; a second entry can make a morning
    worse, never better)."""
    found = [
        p for p in history.pains if p.timing == "morning" and (since is None or p.wall >= since)
    ]
    days: list[PainRecord] = []
    first = -math.inf
    for score in sorted(found, key=lambda p: (p.wall, p.id)):
        if score.wall - first >= SAME_MORNING_S:
            days.append(score)
            first = score.wall
        elif score.value > days[-1].value:
            days[-1] = score
    return days


def current_phase(plan: Plan, sessions: list[SessionRecord]) -> int:
    """The phase (1-based) of the latest session, 1 before any (within the plan's)."""
    if not sessions:
        return 1
    return max(1, min(len(plan.phases), sessions[-1].phase))


def hold_reasons(
    history: PlanHistory, sessions: list[SessionRecord], since: float | None
) -> list[str]:
    """Why progression is held now (empty: it is not)."""
    reasons = []
    for session in reversed([s for s in sessions if s.treated]):
        scores = history.pains_of(session.id)
        before = [p for p in scores if p.timing == "before"]
        after = [p for p in scores if p.timing == "after"]
        if before and after:
            # several of a kind: the lowest before, the worst after (a second entry can
            # make a flare plainer, never hide one)
            b, a = min(p.value for p in before), max(p.value for p in after)
            if a - b > FLARE_RISE:
                reasons.append(
                    f"pain after the session of {iso(session.started_wall)} ({a}/10) exceeds "
                    f"pain before it ({b}/10) by more than {FLARE_RISE}"
                )
            break
    scores = mornings(history, since)
    if len(scores) >= 2 and scores[-1].value > scores[-2].value:
        reasons.append(
            f"next-morning pain {scores[-1].value}/10 ({iso(scores[-1].wall)}) is worse than "
            f"the previous morning's {scores[-2].value}/10"
        )
    return reasons


def entry_unmet(
    rule: EntryRule,
    plan: Plan,
    phase: int,
    sessions: list[SessionRecord],
    history: PlanHistory,
    since: float | None,
    now: float,
) -> list[str]:
    """Which parts of ``rule`` (the next phase's) do not hold now (empty: all hold)."""
    unmet = []
    if rule.from_week is not None and week_of(plan, now) < rule.from_week:
        unmet.append(
            f"week {week_of(plan, now)} of the plan; the next phase from week {rule.from_week}"
        )
    if rule.min_sessions is not None:
        done = sum(1 for s in sessions if s.treated and s.phase == phase)
        if done < rule.min_sessions:
            unmet.append(f"{done} treated session(s) in phase {phase}; {rule.min_sessions} needed")
    rule_pain = rule.morning_pain
    if rule_pain is not None:
        last = mornings(history, since)[-rule_pain.last :]
        if len(last) < rule_pain.last:
            unmet.append(
                f"{len(last)} next-morning score(s) so far; the last {rule_pain.last} are needed"
            )
        elif any(p.value > rule_pain.at_most for p in last):
            values = ", ".join(str(p.value) for p in last)
            unmet.append(
                f"the last {rule_pain.last} next-morning scores are {values}; each must be "
                f"<= {rule_pain.at_most}/10"
            )
    return unmet


@dataclass(frozen=True)
class Decision:
    """The phase the next session runs, and why."""

    from_phase: int
    to_phase: int
    held: tuple[str, ...]  # hold reasons in force (progression held)
    unmet: tuple[str, ...]  # the next phase's entry rule: what does not hold yet
    last_phase: bool  # there is no next phase

    @property
    def advanced(self) -> bool:
        return self.to_phase > self.from_phase

    def reason(self, plan: Plan) -> str:
        """In words, as stored with the decision."""
        if self.advanced:
            rule = plan.phases[self.to_phase - 1].entry
            return f"entered phase {self.to_phase} ({entry_text(rule)}: met)"
        parts = []
        if self.held:
            parts.append("progression held: " + "; ".join(self.held))
        if self.last_phase:
            parts.append(f"phase {self.to_phase} is the plan's last")
        elif self.unmet:
            parts.append(f"phase {self.to_phase + 1} not yet: " + "; ".join(self.unmet))
        return f"stays in phase {self.to_phase}: " + "; ".join(parts)


def decide(plan: Plan, name: str, history: PlanHistory, now: float) -> Decision:
    """The phase a session starting at ``now`` runs."""
    sessions = sessions_of(history, name)
    since = first_adopted(history, name)
    phase = current_phase(plan, sessions)
    held = tuple(hold_reasons(history, sessions, since))
    if phase >= len(plan.phases):
        return Decision(phase, phase, held, (), True)
    rule = plan.phases[phase].entry
    assert rule is not None  # (the schema: every phase after the first has one)
    unmet = tuple(entry_unmet(rule, plan, phase, sessions, history, since, now))
    to = phase + 1 if not unmet and not held else phase
    return Decision(phase, to, held, unmet, False)


def latest_treated(history: PlanHistory) -> SessionRecord | None:
    """The latest session of any plan that treated something and has ended."""
    done = [s for s in history.sessions if s.treated and s.ended_wall is not None]
    return max(done, key=lambda s: (s.ended_wall or 0.0, s.id)) if done else None


def next_session_from(plan: Plan, history: PlanHistory) -> float:
    """The earliest wall time a session may start: the plan's start, and ``rest_hours``
    after the latest treated session ended."""
    earliest = start_wall(plan)
    last = latest_treated(history)
    if last is not None and last.ended_wall is not None:
        earliest = max(earliest, last.ended_wall + plan.rest_hours * 3600.0)
    return earliest


def session_for_pain(
    timing: str, history: PlanHistory, now: float, running: int | None
) -> int | None:
    """The session a new score belongs to: the running one (before, after), the latest
    one that ended (after: within :data:`AFTER_LINK_S`; morning: any), else none."""
    if timing in ("before", "after") and running is not None:
        return running
    if timing == "before":
        return None  # linked when the next session starts (BEFORE_LINK_S)
    ended = [s for s in history.sessions if s.ended_wall is not None and s.ended_wall <= now]
    if not ended:
        return None
    last = max(ended, key=lambda s: (s.ended_wall or 0.0, s.id))
    if timing == "after" and now - (last.ended_wall or 0.0) > AFTER_LINK_S:
        return None
    return last.id


@dataclass(frozen=True)
class Due:
    """Something the person should do now or soon."""

    what: str  # pain_before | pain_after | pain_morning | session | finish_session
    detail: str
    from_wall: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "detail": self.detail,
            "from": None if self.from_wall is None else iso(self.from_wall),
        }


@dataclass(frozen=True)
class PlanStatus:
    """``gunguard plan status``: where the plan stands at ``now``."""

    plan: PlanRecord
    name: str
    now: float
    week: int
    phase: int  # the phase of the latest session (1 before any)
    phase_name: str
    treated_sessions: int
    decision: Decision  # what a session starting now would run
    next_from: float
    running: SessionRecord | None
    due: list[Due] = field(default_factory=list)

    def as_dict(self, plan: Plan) -> dict[str, Any]:
        decision = self.decision
        next_phase = None
        if not decision.last_phase:
            following = plan.phases[decision.from_phase]
            next_phase = {
                "number": decision.from_phase + 1,
                "name": following.name,
                "entry": entry_text(following.entry),
                "unmet": list(decision.unmet),
            }
        phase = plan.phases[decision.to_phase - 1]
        return {
            "format": "gunguard-plan-status/1",
            "plan": {
                "name": self.name,
                "hash": self.plan.hash,
                "patient": self.plan.patient,
                "start_date": self.plan.start_date,
                "adopted": iso(self.plan.adopted_wall),
            },
            "now": iso(self.now),
            "week": self.week,
            "phase": {"number": self.phase, "name": self.phase_name},
            "treated_sessions": self.treated_sessions,
            "next_session": {
                "from": iso(self.next_from),
                "allowed_now": self.now >= self.next_from and self.running is None,
                "phase": {"number": decision.to_phase, "name": phase.name},
                "enters_new_phase": decision.advanced,
                "routine": [
                    {
                        "region": s.region,
                        "minutes": s.minutes,
                        "rate_ppm": list(s.rate_ppm),
                        "cue": s.cue,
                    }
                    for s in phase.routine
                ],
            },
            "progression": {
                "held": bool(decision.held),
                "why": list(decision.held),
                "next_phase": next_phase,
            },
            "running": None
            if self.running is None
            else {"session": self.running.id, "started": iso(self.running.started_wall)},
            "due": [d.as_dict() for d in self.due],
        }


def plan_status(plan: Plan, record: PlanRecord, history: PlanHistory, now: float) -> PlanStatus:
    """Where the plan in ``record`` stands at ``now``, by the same rules a session start
    applies."""
    name = record.name
    sessions = sessions_of(history, name)
    phase = current_phase(plan, sessions)
    decision = decide(plan, name, history, now)
    next_from = next_session_from(plan, history)
    running = next((s for s in reversed(sessions) if s.ended_wall is None), None)
    due: list[Due] = []
    last = latest_treated(history)
    if running is not None:
        due.append(Due("finish_session", f"session {running.id} is running: finish or stop it"))
    elif last is not None and last.ended_wall is not None:
        scores = {p.timing for p in history.pains_of(last.id)}
        since_end = now - last.ended_wall
        if "after" not in scores and since_end <= AFTER_LINK_S:
            due.append(
                Due(
                    "pain_after",
                    "pain after the last session: gunguard pain N --when after",
                    last.ended_wall,
                )
            )
        if "morning" not in scores and now < next_from + AFTER_LINK_S:
            when = last.ended_wall + MORNING_DUE_S
            due.append(
                Due(
                    "pain_morning",
                    "next-morning pain: gunguard pain N --when morning"
                    + ("" if now >= when else f" (from {iso(when)})"),
                    when,
                )
            )
    if running is None:
        target = plan.phases[decision.to_phase - 1]
        text = f"session in phase {decision.to_phase} ({target.name})"
        if now >= next_from:
            due.append(
                Due(
                    "session",
                    f"{text} now: pain before it (gunguard pain N --when before), then "
                    "gunguard session start",
                    next_from,
                )
            )
        else:
            due.append(Due("session", f"{text} from {iso(next_from)}", next_from))
    return PlanStatus(
        plan=record,
        name=name,
        now=now,
        week=week_of(plan, now),
        phase=phase,
        phase_name=plan.phases[phase - 1].name,
        treated_sessions=sum(1 for s in sessions if s.treated),
        decision=decision,
        next_from=next_from,
        running=running,
        due=due,
    )
