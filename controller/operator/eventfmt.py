"""Event lines for people (``simulate`` without ``--json``, ``make demo``, the journal)."""

from __future__ import annotations

import json
from typing import Any

from gunguard.core import events
from gunguard.core.events import Event


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
    else:
        extra = " ".join(f"{k}={v}" for k, v in f.items())
        text = f"{kind} {extra}".rstrip()
    return f"{event.t:9.3f} s  {text}"


def json_line(event: Event) -> str:
    return json.dumps(event.as_dict(), separators=(", ", ": "), default=str)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = ["summary:"]
    for region, d in summary["regions"].items():
        bands = ", ".join(f"{s:.1f}" for s in d["seconds_by_band"])
        note = "  (under-dosed: below the effective minimum)" if d.get("under_dosed") else ""
        lines.append(
            f"  {region:<16} contact {d['contact_seconds']:7.1f} s  dose {d['dose']:.3f}"
            f"  s/band [{bands}]{note}"
        )
    if not summary["regions"]:
        lines.append("  no region received any dose")
    trips = summary["trips"]
    lines.append(f"  trips: {', '.join(trips) if trips else 'none'}")
    return lines
