"""What a valid config means today: which listed regions will arm, and why the rest won't.

``check-config`` prints this. It asks the supervisor's own screening rules
(:func:`gunguard.core.admission.screen`) with the resolved limits, so the summary can
never promise a region that the daemon refuses for a reason of the config itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core.admission import Refusal, screen


@dataclass(frozen=True, slots=True)
class Outlook:
    """The listed regions split into those that arm today and those refused (in order)."""

    arms: tuple[str, ...]
    refused: tuple[Refusal, ...]

    def refusal_groups(self) -> list[tuple[list[str], str]]:
        """Refusals with the same reason and text, as ``([regions], "reason: detail")``."""
        groups: dict[str, list[str]] = {}
        for refusal in self.refused:
            groups.setdefault(f"{refusal.reason}: {refusal.detail}", []).append(refusal.region)
        return [(regions, text) for text, regions in groups.items()]


def outlook(cfg: GunguardConfig, today: dt.date | None = None) -> Outlook:
    """Screen every listed region as the supervisor would when it is selected ``today``."""
    limits = resolve_limits(cfg)
    today = today or dt.date.today()
    arms: list[str] = []
    refused: list[Refusal] = []
    for name in cfg.regions:
        refusal = screen(name, limits, today)
        if refusal is None:
            arms.append(name)
        else:
            refused.append(refusal)
    return Outlook(tuple(arms), tuple(refused))


def summary_lines(label: str, cfg: GunguardConfig, today: dt.date | None = None) -> list[str]:
    """``check-config``'s report of a valid config (before its hash line)."""
    view = outlook(cfg, today)
    if view.arms:
        count = f"{len(view.arms)} regions arm" if len(view.arms) > 1 else "1 region arms"
        lines = [f"{label}: valid; {count} today: {', '.join(view.arms)}"]
    else:
        lines = [f"{label}: valid, but no region arms today"]
    for regions, text in view.refusal_groups():
        lines.append(f"  refused {', '.join(regions)}: {text}")
    lines.append("  checked again at each selection, with: force sensor, rest, dose left, link")
    return lines
