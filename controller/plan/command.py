"""``gunguard plan check FILE`` and ``gunguard plan status``.

``check`` validates a plan like ``check-config`` validates a config: every problem with
file, line and key, exit 2; for a valid plan, what it prescribes. ``status`` reads the
treatment history read-only (it works while the daemon runs) and judges the adopted
plan by the rules a session start applies (:mod:`gunguard.plan.progression`).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from gunguard.config import loader as configfile
from gunguard.config.loader import ConfigError, error_lines, warning_lines
from gunguard.core.exits import Exit
from gunguard.plan.check import check_plan, summary_lines
from gunguard.plan.files import LoadedPlan, load_plan, parse_plan
from gunguard.plan.progression import PlanStatus, plan_status
from gunguard.store.ledger import default_storage_path
from gunguard.store.plans import PlanRecord
from gunguard.store.queries import open_reader
from gunguard.store.schema import StorageFault
from gunguard.store.treatments import iso


def check(file: str, config: str | None) -> int:
    """0: valid (its summary printed); 2: every problem printed."""
    try:
        loaded = load_plan(file)
        folder = Path(loaded.source).resolve().parent
        name = config or loaded.plan.config or "default"
        cfg = configfile.load(name, relative_to=None if config else folder)
    except ConfigError as exc:
        print("\n".join(error_lines(exc, "plan or config")), file=sys.stderr)
        return Exit.CONFIG
    today = dt.datetime.now(dt.UTC).date()
    problems, warnings = check_plan(loaded, cfg, name, today)
    if problems:
        print("\n".join(error_lines(ConfigError(problems), "plan")), file=sys.stderr)
        return Exit.CONFIG
    for line in warning_lines(warnings):
        print(line, file=sys.stderr)
    print("\n".join(summary_lines(loaded, name)))
    return Exit.OK


def status(db: str | None, config: str, plan: str | None, as_json: bool) -> int:
    """0: shown; 1: no plan adopted (and none given); 2: an invalid config or plan;
    4: the store is missing or unreadable."""
    try:
        path = Path(db) if db is not None else default_storage_path(configfile.load(config))
        given = load_plan(plan) if plan is not None else None
    except ConfigError as exc:
        print("\n".join(error_lines(exc)), file=sys.stderr)
        return Exit.CONFIG
    if not path.exists():
        print(
            f"gunguard plan status: no treatment history at {path} (nothing recorded there "
            "yet; give --db PATH, or --config FILE naming storage.path)",
            file=sys.stderr,
        )
        return Exit.UNREACHABLE
    try:
        with open_reader(path) as reader:
            history = reader.plan_history()
    except StorageFault as exc:
        print(f"gunguard plan status: {exc}", file=sys.stderr)
        return Exit.UNREACHABLE
    now = time.time()
    record = history.plan
    if given is not None:
        loaded = given
        if record is None or record.name != given.name:
            record = PlanRecord(
                0,
                given.name,
                given.hash,
                given.plan.patient,
                given.plan.start_date.isoformat(),
                given.document,
                given.source,
                now,
                "",
            )
    elif record is None:
        print(
            "gunguard plan status: no plan adopted yet (gunguard session start --plan NAME, "
            "or gunguard run --plan NAME); give --plan FILE to judge one",
            file=sys.stderr,
        )
        return Exit.NO
    else:
        try:
            loaded = parse_plan(record.document, f"{record.source} (as adopted)", record.name)
        except ConfigError as exc:
            print("\n".join(error_lines(exc, "stored plan")), file=sys.stderr)
            return Exit.CONFIG
    found = plan_status(loaded.plan, record, history, now)
    if as_json:
        print(json.dumps(found.as_dict(loaded.plan), indent=2, default=str))
    else:
        print("\n".join(status_lines(found, loaded)))
    return Exit.OK


def status_lines(found: PlanStatus, loaded: LoadedPlan) -> list[str]:
    """``gunguard plan status`` for people."""
    decision = found.decision
    plan = loaded.plan
    lines = [
        f"plan {found.name} (patient {found.plan.patient}), week {found.week}: phase "
        f"{found.phase} {found.phase_name}; {found.treated_sessions} treated session(s)",
    ]
    when = "now" if found.now >= found.next_from else f"from {iso(found.next_from)}"
    target = plan.phases[decision.to_phase - 1]
    enters = " (enters a new phase)" if decision.advanced else ""
    lines.append(f"next session: {when}, phase {decision.to_phase} {target.name}{enters}")
    if decision.held:
        lines.append("progression HELD: " + "; ".join(decision.held))
    else:
        lines.append("progression not held")
    if not decision.last_phase and not decision.advanced:
        following = plan.phases[decision.from_phase]
        why = (
            f"not yet: {'; '.join(decision.unmet)}"
            if decision.unmet
            else "its entry rule holds, but progression is held"
        )
        lines.append(f"phase {decision.from_phase + 1} {following.name}: {why}")
    if found.running is not None:
        lines.append(f"running: session {found.running.id} since {iso(found.running.started_wall)}")
    if found.due:
        lines.append("due:")
        lines += [f"  {d.detail}" for d in found.due]
    return lines
