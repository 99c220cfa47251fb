"""``gunguard report --plan [--pdf FILE] [--csv FILE] [--fhir FILE]``: the command.

Checks the outputs can be written, reads the plan's record
(:func:`gunguard.operator.plan_report.load_plan_report`), and hands it to each writer
asked for; without one, prints the summary. Every bad input is one line naming what is
wrong (docs/plans.md, "The report back", has the exit statuses).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from gunguard.config.loader import ConfigError, error_lines
from gunguard.core.exits import Exit
from gunguard.operator.plan_report import (
    PlanReport,
    PlanReportError,
    load_plan_report,
    summary_lines,
)
from gunguard.operator.report import store_path

# -- the command ----------------------------------------------------------------------
#: A writer: the report into a path; returns what it wrote, in words ("5 pages").
Writer = Callable[[PlanReport, Path], str]


def _writers() -> dict[str, Writer]:
    """Imported when asked for: matplotlib and fhir.resources take a while to load."""
    from gunguard.operator import plan_csv, plan_fhir, plan_pdf

    return {
        "PDF": plan_pdf.write_pdf,
        "CSV": plan_csv.write_csv,
        "FHIR bundle": plan_fhir.write_fhir,
    }


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written (None: it looks writable)."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return "it is a directory"
    if not parent.is_dir():
        return f"no such directory {parent}"
    if path.exists() and not path.is_file():
        return "not a regular file"
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        return "permission denied"
    return None


def plan_report_command(
    db: str | None,
    config: str | None,
    *,
    pdf: str | None = None,
    csv: str | None = None,
    fhir: str | None = None,
    now: float | None = None,
) -> int:
    """0 written (or summarised); 1 no plan recorded, or an output cannot be written; 2 an
    invalid --config (or stored plan); 4 the store is missing or unreadable."""
    outputs = [
        (kind, Path(out))
        for kind, out in (("PDF", pdf), ("CSV", csv), ("FHIR bundle", fhir))
        if out
    ]
    for kind, out in outputs:
        why = _unwritable(out)
        if why is not None:
            print(f"gunguard report: cannot write the {kind} to {out}: {why}", file=sys.stderr)
            return Exit.NO
    try:
        report = load_plan_report(store_path(db, config), now)
    except ConfigError as exc:
        print("\n".join(error_lines(exc)), file=sys.stderr)
        return Exit.CONFIG
    except PlanReportError as exc:
        print(f"gunguard report: {exc}", file=sys.stderr)
        return exc.exit_code
    if not outputs:
        print("\n".join(summary_lines(report)))
        return Exit.OK
    writers = _writers()
    for kind, out in outputs:
        try:
            what = writers[kind](report, out)
        except OSError as exc:
            print(
                f"gunguard report: cannot write the {kind} to {out}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return Exit.NO
        print(f"{kind}: {out} ({what})")
    return Exit.OK
