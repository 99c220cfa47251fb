"""docs/scenarios.md names every reason code a scenario can expect, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from gunguard.core.reasons import RefusalReason, TripReason, WarningReason

DOC = (Path(__file__).resolve().parents[2] / "docs" / "scenarios.md").read_text(encoding="utf-8")


def _section(start: str, end: str) -> str:
    i = DOC.index(start)
    return DOC[i : DOC.index(end, i)]


def _codes(text: str) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", text))


def test_every_trip_reason_has_a_row():
    rows = _section("Trips (`trip:`", "Refusals (")
    codes = set(re.findall(r"^\| `([a-z_]+)` \|", rows, re.M))
    assert codes == {r.value for r in TripReason}


def test_every_refusal_reason_is_listed():
    listed = _codes(_section("Refusals (`refused:`", "The region rules")) - {"refused", "reason"}
    assert listed == {r.value for r in RefusalReason}


def test_every_warning_reason_is_listed():
    listed = _codes(_section("Warnings (`warning:`", "Session actions")) - {"warning"}
    assert listed == {r.value for r in WarningReason}
