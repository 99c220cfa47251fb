"""Write the results: ``latest.json`` (everything) and ``latest.md`` (the tables)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.common import MET, MISSED, PENDING, Metric, Section


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value == 0.0:
            return "0"
        digits = max(0, 2 - math.floor(math.log10(abs(value))))
        return f"{value:,.{min(digits, 4)}f}"
    return str(value)


def _metric_value(m: Metric) -> str:
    if m.pending is not None:
        return m.pending
    if m.value is None:
        return "error"
    return f"{fmt(m.value)} {m.unit}".strip()


def _cell(value: Any) -> str:
    return fmt(value).replace("|", "\\|")


def _table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    lines = [
        "| " + " | ".join(_cell(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = list(row) + [""] * (len(columns) - len(row))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def markdown(doc: dict[str, Any], sections: list[Section]) -> str:
    m = doc["machine"]
    git = m.get("git") or {}
    commit = git.get("commit") or "unknown"
    if git.get("dirty"):
        commit += " + uncommitted changes"
    mode = "quick pass (not for the record)" if doc["quick"] else "full run"
    if doc.get("only"):
        mode += f", only {', '.join(doc['only'])}"
    out = [
        "# gunguard benchmarks",
        "",
        f"Measured {m['date']} with `{doc['command']}` ({mode}, {doc['wall_minutes']:.1f} "
        "min). Reproduce with `make bench` (every benchmark) or `.venv/bin/python -m bench "
        "--help`. Timed checks stay out of the test suite: tests assert behaviour, this "
        "reports numbers.",
        "",
        f"- Machine: {m['hostname']}, {m['cpu']}, {m['cpus']} CPUs, {m['memory_mib']} MiB, "
        f"{m['arch']}, Linux {m['kernel']}"
        + (f", systemd-detect-virt: {m['virtualisation']}" if m.get("virtualisation") else "")
        + (f", governor {m['governor']}" if m.get("governor") else ""),
        f"- Python: {m['python']}; gpiozero {m['gpiozero']}; gunguard {m['gunguard']} at {commit}",
        f"- Load average at start: {', '.join(str(x) for x in m['load_average'])}; other "
        f"processes kept {fmt(m.get('busy_before_start_pct'))} % of one CPU busy in the 2 s "
        "before the run (an idle machine shows a few %)",
        "",
        "## Targets (issue 7)",
        "",
    ]
    rows = []
    for section in sections:
        for metric in section.metrics:
            if metric.target is None and metric.pending is None:
                continue
            target = metric.target.text(metric.unit) if metric.target else ""
            status = metric.status
            mark = {MET: "met", MISSED: "**MISSED**", PENDING: "pending"}.get(status, status)
            rows.append([metric.label, _metric_value(metric), target, mark])
    out += _table(["Metric", "Measured", "Target", "Status"], rows)
    for section in sections:
        out += ["", f"## {section.title}", ""]
        others = [mt for mt in section.metrics if mt.target is None and mt.pending is None]
        if others:
            out += _table(
                ["Measurement", "Value", "Note"],
                [[mt.label, _metric_value(mt), mt.note] for mt in others],
            )
            out.append("")
        for table in section.tables:
            out += [f"**{table.title}**", ""]
            out += _table(table.columns, table.rows)
            out.append("")
        noted = [mt for mt in section.metrics if mt.target is not None and mt.note]
        for mt in noted:
            out.append(f"- {mt.label}: {mt.note}.")
        for note in section.notes:
            out.append(f"- {note}")
        if section.seconds:
            out.append(f"- This benchmark took {section.seconds:.0f} s.")
    out.append("")
    return "\n".join(out)


def write(out_dir: Path, stem: str, doc: dict[str, Any], sections: list[Section]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {**doc, "sections": {s.name: s.as_dict() for s in sections}}
    json_path = out_dir / f"{stem}.json"
    md_path = out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    md_path.write_text(markdown(doc, sections), encoding="utf-8")
    return [json_path, md_path]
