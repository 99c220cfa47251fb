"""Treatment plans in the store (schema 4): typed records, their reader, and the book
guided sessions write through.

Tables (docs/history.md): ``plans`` (each plan adopted, its YAML kept as adopted),
``plan_sessions`` (each guided session: plan, phase, start, end, outcome),
``plan_steps`` (each step of a session: region, target, rate band, counted contact,
outcome), ``pain_scores`` (0-10, before or after a session or the next morning) and
``progression`` (the phase decision taken as each session started: held, and why).

A report reads them with :func:`read_plan_history` (or
:meth:`gunguard.store.queries.StoreReader.plan_history` on an open reader): frozen
dataclasses, oldest first, sessions with their steps.

:class:`PlanBook` is what the daemon and the bench write through: an in-memory copy of
the records (every decision reads this copy, never a query) and, on a ledger, rows
queued on the ledger's writer (:meth:`gunguard.store.ledger.Ledger.enqueue`): committed
in its next transaction, durably, retried when a write fails, never on the control
loop's thread. Without a ledger (a bench on an in-memory book) the records live as long
as the book.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

#: The schema that added the plan tables.
PLANS_SINCE = 4

Timing = Literal["before", "after", "morning"]
TIMINGS: tuple[Timing, ...] = ("before", "after", "morning")
PAIN_MIN, PAIN_MAX = 0, 10

# How a guided session ended (``plan_sessions.outcome``; NULL while it runs).
COMPLETED, STOPPED, INTERRUPTED = "completed", "stopped", "interrupted"
# How a step ended (``plan_steps.outcome``).
STEP_DONE, STEP_SKIPPED, STEP_REFUSED, STEP_STOPPED = "done", "skipped", "refused", "stopped"


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """A plan as adopted: its document is the prescription the sessions followed."""

    id: int
    name: str
    hash: str
    patient: str  # a label, no personal data
    start_date: str  # YYYY-MM-DD
    document: str  # the YAML as adopted, comments included
    source: str  # where it was read from
    adopted_wall: float
    config_hash: str  # the config it was checked against


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a guided session, as it ended."""

    session_id: int
    step: int  # 1-based position in the phase's routine
    region: str
    target_s: float
    rate_min_ppm: float
    rate_max_ppm: float
    done_s: float  # contact the supervisor counted for the region while the step was armed
    outcome: str  # done | skipped | refused | stopped
    detail: str | None  # a refusal's or interruption's reason, in words
    started_wall: float | None  # first armed (None: never armed)
    ended_wall: float


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A guided session; ``steps`` in routine order (only the steps it reached)."""

    id: int
    plan_id: int
    phase: int  # 1-based
    phase_name: str
    started_wall: float
    ended_wall: float | None  # None: running (or the daemon died: interrupted at next start)
    outcome: str | None  # completed | stopped | interrupted; None while running
    daemon_session: int | None  # the ``sessions`` row of the daemon run it happened in
    steps: tuple[StepRecord, ...] = ()

    @property
    def counted_s(self) -> float:
        """Contact counted over all its steps."""
        return sum(s.done_s for s in self.steps)

    @property
    def treated(self) -> bool:
        """Whether it treated anything: only such a session counts for rest and progress."""
        return self.counted_s > 0.0


@dataclass(frozen=True, slots=True)
class PainRecord:
    """A pain score on the 0-10 numeric rating scale."""

    id: int
    wall: float
    value: int
    timing: str  # before | after | morning
    session_id: int | None  # the guided session it belongs to (None: none known)
    source: str  # who entered it: cli, socket, scenario ...


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """The phase decision taken as a session started."""

    id: int
    wall: float
    session_id: int
    plan_id: int
    from_phase: int
    to_phase: int
    held: bool  # a progression rule held it back (the next phase was not entered)
    reason: str  # why it advanced, stayed or was held, in words


@dataclass(frozen=True, slots=True)
class PlanHistory:
    """Everything the store holds about plans, oldest first."""

    plans: tuple[PlanRecord, ...] = ()
    sessions: tuple[SessionRecord, ...] = ()
    pains: tuple[PainRecord, ...] = ()
    decisions: tuple[DecisionRecord, ...] = ()

    @property
    def plan(self) -> PlanRecord | None:
        """The plan in force: the one adopted last."""
        return self.plans[-1] if self.plans else None

    def sessions_of(self, plan_id: int) -> list[SessionRecord]:
        return [s for s in self.sessions if s.plan_id == plan_id]

    def pains_of(self, session_id: int) -> list[PainRecord]:
        return [p for p in self.pains if p.session_id == session_id]

    @property
    def newest_wall(self) -> float | None:
        """The newest wall time any plan record holds (None: none): a wall clock behind
        it is untrusted (docs/history.md)."""
        walls = [p.adopted_wall for p in self.plans]
        walls += [p.wall for p in self.pains]
        walls += [d.wall for d in self.decisions]
        for s in self.sessions:
            walls.append(s.started_wall)
            walls += [s.ended_wall] if s.ended_wall is not None else []
            walls += [st.ended_wall for st in s.steps]
        return max(walls, default=None)


# -- reading ------------------------------------------------------------------------------
_PLAN = (
    "SELECT id, name, hash, patient, start_date, document, source, adopted_wall, config_hash"
    " FROM plans ORDER BY id"
)
_SESSION = (
    "SELECT id, plan_id, phase, phase_name, started_wall, ended_wall, outcome, daemon_session"
    " FROM plan_sessions ORDER BY id"
)
_STEP = (
    "SELECT session_id, step, region, target_s, rate_min_ppm, rate_max_ppm, done_s, outcome,"
    " detail, started_wall, ended_wall FROM plan_steps ORDER BY session_id, step"
)
_PAIN = "SELECT id, wall, value, timing, session_id, source FROM pain_scores ORDER BY id"
_DECISION = (
    "SELECT id, wall, session_id, plan_id, from_phase, to_phase, held, reason"
    " FROM progression ORDER BY id"
)


def read_plan_history(conn: sqlite3.Connection) -> PlanHistory:
    """Every plan record on ``conn`` (empty for a store before schema 4: readers never
    migrate). Raises :class:`sqlite3.Error` as the queries do."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version < PLANS_SINCE:
        return PlanHistory()
    steps: dict[int, list[StepRecord]] = {}
    for row in conn.execute(_STEP):
        steps.setdefault(row[0], []).append(StepRecord(*row))
    sessions = tuple(
        SessionRecord(*row, steps=tuple(steps.get(row[0], ()))) for row in conn.execute(_SESSION)
    )
    return PlanHistory(
        plans=tuple(PlanRecord(*row) for row in conn.execute(_PLAN)),
        sessions=sessions,
        pains=tuple(PainRecord(*row) for row in conn.execute(_PAIN)),
        decisions=tuple(
            DecisionRecord(i, w, s, p, f, t, bool(h), r)
            for i, w, s, p, f, t, h, r in conn.execute(_DECISION)
        ),
    )


# -- writing ------------------------------------------------------------------------------
_INSERT_PLAN = (
    "INSERT INTO plans (id, name, hash, patient, start_date, document, source, adopted_wall,"
    " config_hash) VALUES (?,?,?,?,?,?,?,?,?)"
)
_INSERT_SESSION = (
    "INSERT INTO plan_sessions (id, plan_id, phase, phase_name, started_wall, ended_wall,"
    " outcome, daemon_session) VALUES (?,?,?,?,?,?,?,?)"
)
_CLOSE_SESSION = "UPDATE plan_sessions SET ended_wall = ?, outcome = ? WHERE id = ?"
_UPSERT_STEP = (
    "INSERT INTO plan_steps (session_id, step, region, target_s, rate_min_ppm, rate_max_ppm,"
    " done_s, outcome, detail, started_wall, ended_wall) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(session_id, step) DO UPDATE SET done_s = excluded.done_s,"
    " outcome = excluded.outcome, detail = excluded.detail,"
    " started_wall = COALESCE(started_wall, excluded.started_wall),"
    " ended_wall = excluded.ended_wall"
)
_INSERT_PAIN = (
    "INSERT INTO pain_scores (id, wall, value, timing, session_id, source) VALUES (?,?,?,?,?,?)"
)
_LINK_PAIN = "UPDATE pain_scores SET session_id = ? WHERE id = ?"
_INSERT_DECISION = (
    "INSERT INTO progression (id, wall, session_id, plan_id, from_phase, to_phase, held, reason)"
    " VALUES (?,?,?,?,?,?,?,?)"
)


class PlanSink(Protocol):
    """Where a :class:`PlanBook` stores its rows: a :class:`~gunguard.store.ledger.Ledger`."""

    @property
    def fault(self) -> Exception | None: ...

    def enqueue(self, sql: str, params: tuple[Any, ...]) -> None: ...

    def connection(self) -> AbstractContextManager[sqlite3.Connection]: ...


class PlanBook:
    """The plan records in memory, stored behind through a sink (or not at all).

    Thread-safe: the control socket, the event dispatcher and a tick check may all
    write. Ids are given here (one above the largest stored), so a queued row and the
    copy in memory always agree.
    """

    def __init__(self, history: PlanHistory | None = None, sink: PlanSink | None = None) -> None:
        history = history or PlanHistory()
        self._sink = sink
        self._lock = threading.Lock()
        self._plans = list(history.plans)
        self._sessions = {s.id: dataclasses.replace(s, steps=()) for s in history.sessions}
        self._steps: dict[tuple[int, int], StepRecord] = {
            (st.session_id, st.step): st for s in history.sessions for st in s.steps
        }
        self._pains = {p.id: p for p in history.pains}
        self._decisions = list(history.decisions)
        self._unreadable: str | None = None

    @classmethod
    def on_ledger(cls, ledger: PlanSink) -> PlanBook:
        """The records stored in ``ledger``'s store, writing through it. A store that
        cannot be read gives a book whose :attr:`fault` says why (nothing is written)."""
        try:
            with ledger.connection() as conn:
                history = read_plan_history(conn)
        except Exception as exc:  # a StorageFault (not open), or SQLite's own error
            book = cls()
            book._unreadable = f"treatment history unavailable: {exc}"
            return book
        return cls(history, ledger)

    @property
    def fault(self) -> str | None:
        """Why records cannot be stored now (None: they can)."""
        if self._unreadable is not None:
            return self._unreadable
        fault = self._sink.fault if self._sink is not None else None
        return None if fault is None else f"treatment history unavailable: {fault}"

    def _store(self, sql: str, params: tuple[Any, ...]) -> None:
        if self._sink is not None:
            self._sink.enqueue(sql, params)

    def history(self) -> PlanHistory:
        """A consistent copy of every record."""
        with self._lock:
            steps: dict[int, list[StepRecord]] = {}
            for key in sorted(self._steps):
                steps.setdefault(key[0], []).append(self._steps[key])
            return PlanHistory(
                plans=tuple(self._plans),
                sessions=tuple(
                    dataclasses.replace(s, steps=tuple(steps.get(s.id, ())))
                    for s in sorted(self._sessions.values(), key=lambda s: s.id)
                ),
                pains=tuple(sorted(self._pains.values(), key=lambda p: p.id)),
                decisions=tuple(self._decisions),
            )

    # -- records --------------------------------------------------------------------------
    def adopt(
        self,
        *,
        name: str,
        hash: str,
        patient: str,
        start_date: str,
        document: str,
        source: str,
        wall: float,
        config_hash: str,
    ) -> PlanRecord:
        with self._lock:
            record = PlanRecord(
                _next(p.id for p in self._plans),
                name,
                hash,
                patient,
                start_date,
                document,
                source,
                wall,
                config_hash,
            )
            self._plans.append(record)
            self._store(_INSERT_PLAN, dataclasses.astuple(record))
        return record

    def open_session(
        self, *, plan_id: int, phase: int, phase_name: str, wall: float, daemon_session: int | None
    ) -> SessionRecord:
        with self._lock:
            record = SessionRecord(
                _next(iter(self._sessions)),
                plan_id,
                phase,
                phase_name,
                wall,
                None,
                None,
                daemon_session,
            )
            self._sessions[record.id] = record
            self._store(_INSERT_SESSION, dataclasses.astuple(record)[:8])
        return record

    def close_session(self, session_id: int, *, wall: float, outcome: str) -> None:
        with self._lock:
            record = self._sessions[session_id]
            self._sessions[session_id] = dataclasses.replace(
                record, ended_wall=wall, outcome=outcome
            )
            self._store(_CLOSE_SESSION, (wall, outcome, session_id))

    def step(self, record: StepRecord) -> None:
        """A step's state as it ended (again: a resumed step adds to it)."""
        with self._lock:
            key = (record.session_id, record.step)
            earlier = self._steps.get(key)
            if earlier is not None and earlier.started_wall is not None:
                record = dataclasses.replace(record, started_wall=earlier.started_wall)
            self._steps[key] = record
            self._store(_UPSERT_STEP, dataclasses.astuple(record))

    def add_pain(
        self, *, wall: float, value: int, timing: str, session_id: int | None, source: str
    ) -> PainRecord:
        if not (isinstance(value, int) and PAIN_MIN <= value <= PAIN_MAX):
            raise ValueError(f"pain {value!r}: a whole number from {PAIN_MIN} to {PAIN_MAX}")
        if timing not in TIMINGS:
            raise ValueError(f"pain timing {timing!r}: one of {', '.join(TIMINGS)}")
        with self._lock:
            record = PainRecord(_next(iter(self._pains)), wall, value, timing, session_id, source)
            self._pains[record.id] = record
            self._store(_INSERT_PAIN, dataclasses.astuple(record))
        return record

    def link_pain(self, pain_id: int, session_id: int) -> None:
        with self._lock:
            self._pains[pain_id] = dataclasses.replace(self._pains[pain_id], session_id=session_id)
            self._store(_LINK_PAIN, (session_id, pain_id))

    def decide(
        self,
        *,
        wall: float,
        session_id: int,
        plan_id: int,
        from_phase: int,
        to_phase: int,
        held: bool,
        reason: str,
    ) -> DecisionRecord:
        with self._lock:
            record = DecisionRecord(
                _next(d.id for d in self._decisions),
                wall,
                session_id,
                plan_id,
                from_phase,
                to_phase,
                held,
                reason,
            )
            self._decisions.append(record)
            values = dataclasses.astuple(record)
            self._store(_INSERT_DECISION, (*values[:6], int(held), reason))
        return record


def _next(ids: Iterator[int] | Any) -> int:
    return max(ids, default=0) + 1
