"""``gunguard report --plan``: a treatment plan's record, for the physiotherapist.

What the store holds about the plan adopted last (:mod:`gunguard.store.plans`: its
guided sessions with their steps, the pain scores, the phase decisions) and the trips
and refusals recorded while its sessions ran, gathered once (:func:`load_plan_report`)
and written by small modules, one format each:

* :mod:`gunguard.operator.plan_pdf`: a multi-page PDF (plan, sessions, minutes, rates,
  pain, trips and refusals);
* :mod:`gunguard.operator.plan_csv`: one CSV, a row per recorded step, pain score and
  phase decision;
* :mod:`gunguard.operator.plan_fhir`: a FHIR R4 (R4B models) JSON Bundle.

The command is :mod:`gunguard.operator.plan_export`. Without an output it prints a
short summary (:func:`summary_lines`); ``gunguard plan
status`` says where the plan stands now (phase, next session, what is due), this says
what was done. Reports show only what was recorded (docs/plans.md, "The report back"):
an open session is shown as open, nothing is interpolated, a missing value stays
missing.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from gunguard.config.loader import ConfigError, error_lines
from gunguard.core.exits import Exit
from gunguard.operator.units import mmss
from gunguard.plan.files import LoadedPlan, parse_plan
from gunguard.plan.progression import first_adopted, sessions_of, week_of
from gunguard.plan.schema import Plan, RoutineStep
from gunguard.store.plans import (
    DecisionRecord,
    PainRecord,
    PlanHistory,
    PlanRecord,
    SessionRecord,
    StepRecord,
)
from gunguard.store.queries import Refusal, StoreReader, Trip, open_reader
from gunguard.store.schema import StorageFault
from gunguard.store.treatments import iso

WEEK_S = 7 * 86400.0
#: How an open session (no end recorded) is named in every export.
OPEN = "open"


class PlanReportError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class MeasuredRate:
    """The rate samples recorded while a step's region was armed with the motor on."""

    samples: int
    low: float
    median: float
    high: float


@dataclass(frozen=True)
class PlanReport:
    """Everything a plan report shows, as recorded."""

    db: Path
    record: PlanRecord  # the plan adopted last
    loaded: LoadedPlan  # its document, parsed: the prescription
    plan_ids: frozenset[int]  # every adoption of the plan of that name
    prescriptions: dict[int, Plan]  # plan id -> that adoption's plan
    sessions: tuple[SessionRecord, ...]
    pains: tuple[PainRecord, ...]
    decisions: tuple[DecisionRecord, ...]
    trips: tuple[Trip, ...]  # recorded while one of the sessions ran
    refusals: tuple[Refusal, ...]
    rates: dict[tuple[int, int], MeasuredRate]  # (session, step) -> measured
    newest_wall: float | None  # the newest record: where an open session's window ends
    generated_wall: float

    @property
    def plan(self) -> Plan:
        return self.loaded.plan

    def routine(self, session: SessionRecord) -> tuple[RoutineStep, ...]:
        """The routine the session's phase prescribed, in the plan as it adopted it."""
        plan = self.prescriptions.get(session.plan_id, self.plan)
        if 1 <= session.phase <= len(plan.phases):
            return plan.phases[session.phase - 1].routine
        return ()

    def window(self, session: SessionRecord) -> tuple[float, float]:
        """When the session ran: to its end, or (open) to the newest record."""
        end = session.ended_wall
        if end is None:
            walls = [session.started_wall, self.newest_wall or session.started_wall]
            walls += [s.ended_wall for s in session.steps]
            end = max(walls)
        return session.started_wall, end

    def session_of(self, wall: float) -> SessionRecord | None:
        for session in self.sessions:
            start, end = self.window(session)
            if start <= wall <= end:
                return session
        return None

    # -- what the pages and the summary count ---------------------------------------------
    def most_per_week(self) -> int:
        """The most sessions a week the plan's rest allows: a session may start
        ``rest_hours`` after the previous one ended, so (each taking some time) fewer
        than 168 / rest_hours + 1 start within 7 days."""
        return math.ceil(168.0 / self.plan.rest_hours)

    def weeks(self) -> list[tuple[int, int, int]]:
        """Per week of the plan (1 ... the newest session's): (week, sessions that
        treated anything, sessions that did not)."""
        if not self.sessions:
            return []
        counts: dict[int, list[int]] = {}
        for s in self.sessions:
            week = week_of(self.plan, s.started_wall)
            counts.setdefault(week, [0, 0])[0 if s.treated else 1] += 1
        last = max(counts)
        first = min(1, min(counts))
        return [(w, *counts.get(w, [0, 0])) for w in range(first, last + 1)]  # type: ignore[misc]

    def regions(self) -> list[str]:
        """Every region prescribed or recorded, in order of first appearance."""
        seen: list[str] = []
        for s in self.sessions:
            seen += [step.region for step in self.routine(s)] + [st.region for st in s.steps]
        return list(dict.fromkeys(seen))

    def minutes(self, session: SessionRecord) -> dict[str, tuple[float, float]]:
        """Per region: (counted contact s over its recorded steps, the target s its
        phase's routine prescribes)."""
        out: dict[str, list[float]] = {}
        for step in self.routine(session):
            out.setdefault(step.region, [0.0, 0.0])[1] += step.target_s
        for st in session.steps:
            out.setdefault(st.region, [0.0, 0.0])[0] += st.done_s
        return {r: (v[0], v[1]) for r, v in out.items()}

    def region_totals(self) -> dict[str, tuple[float, float]]:
        totals: dict[str, list[float]] = {r: [0.0, 0.0] for r in self.regions()}
        for s in self.sessions:
            for region, (done, target) in self.minutes(s).items():
                totals[region][0] += done
                totals[region][1] += target
        return {r: (v[0], v[1]) for r, v in totals.items()}

    def held(self) -> list[DecisionRecord]:
        return [d for d in self.decisions if d.held]


def outcome_text(session: SessionRecord) -> str:
    return session.outcome or OPEN


# -- reading --------------------------------------------------------------------------
def load_plan_report(path: Path, now: float | None = None) -> PlanReport:
    """The plan adopted last and its records; raises :class:`PlanReportError`."""
    if not path.exists():
        raise PlanReportError(
            f"{path}: no such file (has gunguard run with this store? give --db PATH)",
            Exit.UNREACHABLE,
        )
    try:
        with open_reader(path) as store:
            history = store.plan_history() if store.schema_version() else PlanHistory()
            if history.plan is None:
                raise PlanReportError(
                    f"{path}: no treatment plan recorded (no plan was adopted with this store: "
                    "gunguard run --plan NAME, or gunguard session start --plan NAME)",
                    Exit.NO,
                )
            return _gather(store, path, history, history.plan, now)
    except StorageFault as fault:
        raise PlanReportError(str(fault), Exit.UNREACHABLE) from None


def _parse(record: PlanRecord) -> LoadedPlan:
    try:
        return parse_plan(record.document, f"{record.source} (as adopted)", record.name)
    except ConfigError as exc:
        lines = error_lines(exc, "stored plan")
        raise PlanReportError("\n".join(lines), Exit.CONFIG) from None


def _gather(
    store: StoreReader, path: Path, history: PlanHistory, record: PlanRecord, now: float | None
) -> PlanReport:
    loaded = _parse(record)
    adoptions = [p for p in history.plans if p.name == record.name]
    prescriptions = {p.id: _parse(p).plan for p in adoptions}
    ids = frozenset(prescriptions)
    sessions = tuple(sessions_of(history, record.name))
    known = {s.id for s in sessions}
    since = first_adopted(history, record.name) or record.adopted_wall
    pains = tuple(
        p
        for p in history.pains
        if p.session_id in known or (p.session_id is None and p.wall >= since)
    )
    report = PlanReport(
        db=path,
        record=record,
        loaded=loaded,
        plan_ids=ids,
        prescriptions=prescriptions,
        sessions=sessions,
        pains=pains,
        decisions=tuple(d for d in history.decisions if d.plan_id in ids),
        trips=(),
        refusals=(),
        rates={},
        newest_wall=store.newest_record() if store.schema_version() else None,
        generated_wall=time.time() if now is None else now,
    )
    windows = [report.window(s) for s in sessions]

    def during(wall: float) -> bool:
        return any(start <= wall <= end for start, end in windows)

    trips = tuple(t for t in store.trips() if during(t.wall))
    refusals = tuple(r for r in store.refusals() if during(r.wall))
    rates = {
        (st.session_id, st.step): rate
        for s in sessions
        for st in s.steps
        if (rate := _measured(store, st)) is not None
    }
    return dataclasses.replace(report, trips=trips, refusals=refusals, rates=rates)


def _measured(store: StoreReader, step: StepRecord) -> MeasuredRate | None:
    """The rates recorded while the step's region was armed and the motor had power."""
    if step.started_wall is None:
        return None
    found = store.window_telemetry(step.region, step.started_wall, step.ended_wall)
    rates = sorted(
        rate
        for rate, power, region in zip(found.rate_ppm, found.power, found.region, strict=True)
        if power and region == step.region and rate > 0
    )
    if not rates:
        return None
    return MeasuredRate(len(rates), rates[0], statistics.median(rates), rates[-1])


# -- the summary ----------------------------------------------------------------------
def summary_lines(report: PlanReport) -> list[str]:
    """What was done under the plan, in a few lines (``plan status`` says what is next)."""
    plan, record = report.plan, report.record
    sessions = report.sessions
    lines = [
        f"plan {record.name} (patient {plan.patient}), from {plan.start_date.isoformat()}: "
        f"{len(sessions)} guided session(s)"
        + (
            f", {iso(sessions[0].started_wall)} to {iso(report.window(sessions[-1])[1])}"
            if sessions
            else ""
        )
    ]
    outcomes: dict[str, int] = {}
    for s in sessions:
        outcomes[outcome_text(s)] = outcomes.get(outcome_text(s), 0) + 1
    if outcomes:
        lines.append("  outcomes: " + ", ".join(f"{n} {what}" for what, n in outcomes.items()))
    weeks = ", ".join(f"week {w}: {t + u}" for w, t, u in report.weeks())
    if weeks:
        lines.append(
            f"  sessions per week (the {plan.rest_hours:g} h rest allows at most "
            f"{report.most_per_week()}): {weeks}"
        )
    totals = ", ".join(
        f"{region} {mmss(done)} / {mmss(target)}"
        for region, (done, target) in report.region_totals().items()
    )
    if totals:
        lines.append(f"  contact counted / prescribed: {totals}")
    for timing in ("before", "after", "morning"):
        scores = [p for p in report.pains if p.timing == timing]
        if scores:
            values = " ".join(str(p.value) for p in scores)
            lines.append(f"  pain {timing} ({len(scores)}): {values}")
    if not report.pains:
        lines.append("  no pain scores recorded")
    held = report.held()
    lines.append(f"  progression held at {len(held)} session start(s)")
    lines += [f"    session {d.session_id} ({iso(d.wall)}): {d.reason}" for d in held]
    lines.append(
        f"  during the sessions: {len(report.trips)} trip(s), {len(report.refusals)} refused "
        "selection(s)"
    )
    return lines
