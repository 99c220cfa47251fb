"""``gunguard report --plan --csv FILE``: the plan's records as one CSV.

One header row, then one row per record, in this order: every guided session's steps
(``session_step``, a session that reached no step as one ``session`` row), then the pain
scores (``pain``), then the phase decisions (``decision``), each oldest first. The
``record`` column says which; a column that does not apply to a record is empty. Times
are ISO 8601 UTC, seconds as recorded (3 decimals). docs/plans.md, "The report back",
has the table.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gunguard.operator.plan_report import PlanReport, outcome_text
from gunguard.store.plans import SessionRecord
from gunguard.store.treatments import iso

COLUMNS = (
    "record",  # session_step | session | pain | decision
    "session",
    "phase",
    "phase_name",
    "session_start",
    "session_end",  # empty: no end recorded (open)
    "session_outcome",  # completed | stopped | interrupted | open
    "step",
    "region",
    "target_s",
    "done_s",
    "rate_min_ppm",
    "rate_max_ppm",
    "step_outcome",  # done | skipped | refused | stopped
    "step_start",  # empty: never armed
    "step_end",
    "at",  # pain: when given; decision: when taken
    "value",  # pain 0-10
    "timing",  # before | after | morning
    "from_phase",
    "to_phase",
    "held",  # decision: true | false
    "detail",  # step: refusal or pause reason; pain: who entered it; decision: why
)


def _time(wall: float | None) -> str:
    return "" if wall is None else iso(wall)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _session(s: SessionRecord) -> dict[str, Any]:
    return {
        "session": s.id,
        "phase": s.phase,
        "phase_name": s.phase_name,
        "session_start": _time(s.started_wall),
        "session_end": _time(s.ended_wall),
        "session_outcome": outcome_text(s),
    }


def rows(report: PlanReport) -> Iterator[dict[str, Any]]:
    """The rows, as dicts keyed by :data:`COLUMNS` (missing keys: empty)."""
    for s in report.sessions:
        if not s.steps:
            yield {"record": "session", **_session(s)}
        for st in s.steps:
            yield {
                "record": "session_step",
                **_session(s),
                "step": st.step,
                "region": st.region,
                "target_s": _seconds(st.target_s),
                "done_s": _seconds(st.done_s),
                "rate_min_ppm": f"{st.rate_min_ppm:g}",
                "rate_max_ppm": f"{st.rate_max_ppm:g}",
                "step_outcome": st.outcome,
                "step_start": _time(st.started_wall),
                "step_end": _time(st.ended_wall),
                "detail": st.detail or "",
            }
    for p in report.pains:
        yield {
            "record": "pain",
            "session": "" if p.session_id is None else p.session_id,
            "at": _time(p.wall),
            "value": p.value,
            "timing": p.timing,
            "detail": p.source,
        }
    for d in report.decisions:
        yield {
            "record": "decision",
            "session": d.session_id,
            "at": _time(d.wall),
            "from_phase": d.from_phase,
            "to_phase": d.to_phase,
            "held": "true" if d.held else "false",
            "detail": d.reason,
        }


def write_csv(report: PlanReport, path: Path) -> str:
    count = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS, restval="")
        writer.writeheader()
        for row in rows(report):
            writer.writerow(row)
            count += 1
    return f"{count} rows"
