"""Event lines for people (``simulate`` without ``--json``, ``make demo``, the journal)."""

from __future__ import annotations

import json
from typing import Any

from gunguard.core import events
from gunguard.core.events import Event
from gunguard.operator.units import percent


def human(event: Event) -> str:
    """``  12.345 s  TRIP overspeed: measured 2600 ppm > ...``"""
    f = event.fields
    kind = event.kind
    if kind == events.POWER:
        text = "power ON" if f["on"] else "power off"
    elif kind == events.TRIP:
        text = f"TRIP {f['reason']}: {f['detail']}"
    elif kind == events.REFUSED:
        until = f" (allowed from {f['until']})" if f.get("until") else ""
        text = f"refused {f['region']}: {f['reason']}: {f['detail']}{until}"
    elif kind == events.REGION:
        text = f"region {f['region']}" if f["region"] else "region deselected"
    elif kind == events.WARNING:
        text = f"warning {f['reason']}: {f.get('detail', '')}"
    elif kind == events.RESET:
        text = f"reset (cleared {', '.join(f.get('reasons') or [str(f.get('cleared'))])})"
    elif kind == events.SESSION:
        text = session_text(f)
    elif kind == events.PAIN:
        session = f" (session {f['session']})" if f.get("session") is not None else ""
        text = f"pain {f['value']}/10 {f['when']}{session}"
    elif kind == events.CONFIRM:
        text = f"confirm ({f.get('source')})"
    else:
        extra = " ".join(f"{k}={v}" for k, v in f.items())
        text = f"{kind} {extra}".rstrip()
    return f"{event.t:9.3f} s  {text}"


def _m(seconds: Any) -> str:
    whole = max(0, int(float(seconds) + 0.5))
    return f"{whole // 60}:{whole % 60:02d}"


def session_text(f: dict[str, Any]) -> str:
    """A ``session`` event in words."""
    action = f.get("action")
    step = f"step {f.get('step')} {f.get('region')}"
    if action == "started":
        return (
            f"session {f['session']} started: {f['plan']}, phase {f['phase']} "
            f"({f['phase_name']}), {f['steps']} steps"
        )
    if action == "advanced":
        return f"session: phase {f['phase']}: {f.get('detail', '')}"
    if action == "held":
        return f"session: progression HELD in phase {f['phase']}: {f.get('detail', '')}"
    if action == "armed":
        return f"session {step} armed: target {_m(f['target_s'])}: {f.get('cue', '')}"
    if action == "target":
        return f"session {step}: target {_m(f['target_s'])} reached: confirm to move on"
    if action == "refused":
        return f"session {step} REFUSED ({f.get('reason')}): {f.get('detail', '')}"
    if action == "paused":
        return f"session {step} paused: {f.get('detail', '')}"
    if action == "step_done":
        return f"session {step} {f['outcome']}: {_m(f['done_s'])} of {_m(f['target_s'])}"
    if action == "rejected":
        return f"session {f.get('command')} rejected ({f.get('reason')}): {f.get('detail', '')}"
    return f"session {f.get('session', '')} {action}".replace("  ", " ")


def json_line(event: Event) -> str:
    return json.dumps(event.as_dict(), separators=(", ", ": "), default=str)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = ["summary:"]
    for region, d in summary["regions"].items():
        bands = ", ".join(f"{s:.1f}" for s in d["seconds_by_band"])
        note = "  (under-dosed: below the effective minimum)" if d.get("under_dosed") else ""
        lines.append(
            f"  {region:<16} contact {d['contact_seconds']:7.1f} s  dose {percent(d['dose'])}"
            f"  s/band [{bands}]{note}"
        )
    if not summary["regions"]:
        lines.append("  no region received any dose")
    trips = summary["trips"]
    lines.append(f"  trips: {', '.join(trips) if trips else 'none'}")
    return lines
