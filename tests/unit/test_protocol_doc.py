"""docs/serial-protocol.md is the contract a firmware team implements from: its tables
must say what the code does (region codes, STOP reasons, enumerations)."""

from __future__ import annotations

import re
from pathlib import Path

from gunguard.core.reasons import TripReason
from gunguard.core.regions import ALL_REGIONS, NEVER_ALLOWED
from gunguard.link.guard import STOP_FOR_TRIP
from gunguard.link.protocol import (
    REGION_CODES,
    Attachment,
    ButtonId,
    PressKind,
    StopReason,
    WarningCode,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "serial-protocol.md"


def section(title: str) -> str:
    """The text of the section whose heading starts with ``title``, up to the next one."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {re.escape(title)}.*?$", text, flags=re.M)
    assert match is not None, f"no section {title!r} in {DOC.name}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    return rest[: end.start() if end else len(rest)]


def test_the_region_code_table_is_region_codes():
    rows = re.findall(r"^\| (\d+) \| `([a-z-]+)` \| ([^|]+) \|$", section("5.11"), flags=re.M)
    assert {name: int(code) for code, name, _ in rows} == REGION_CODES
    assert [int(code) for code, _, _ in rows] == sorted(REGION_CODES.values())
    never = {name for _, name, note in rows if note.startswith("never armed")}
    assert never == NEVER_ALLOWED


def test_every_region_has_one_code_and_none_is_zero():
    assert set(REGION_CODES) == ALL_REGIONS
    codes = list(REGION_CODES.values())
    assert len(codes) == len(set(codes)) and min(codes) >= 1 and max(codes) <= 255


def test_the_stop_reason_table_is_what_the_guard_sends():
    text = section("8.6")
    table = text[text.index("The STOP reason gunguard sends") :]
    documented: dict[str, int] = {}
    for trips, code in re.findall(r"^\| trips? (.+?) \| (\d+) [a-z ]+\|$", table, flags=re.M):
        for trip in re.findall(r"`([a-z_]+)`", trips):
            documented[trip] = int(code)
    assert documented == {str(t): int(r) for t, r in STOP_FOR_TRIP.items()}
    others = re.search(r"^\| any other trip \((.+?)\) \| 255 other \|$", table, flags=re.M)
    assert others is not None
    rest = set(re.findall(r"`([a-z_]+)`", others.group(1)))
    assert rest == {str(t) for t in TripReason} - set(documented)
    assert re.search(r"^\| no region armed .+ \| 6 no region selected", table, flags=re.M)
    assert re.search(r"^\| gunguard stopping .+ \| 8 shutdown", table, flags=re.M)


def test_the_enumerations_are_the_code_s():
    text = section("5.10")

    def listed(label: str) -> dict[int, str]:
        line = re.search(rf"\*\*{label}:\*\*(.+?)(?:\*\*|\n\n)", text, flags=re.S)
        assert line is not None, label
        return {int(n): w for n, w in re.findall(r"(\d+) ([a-z-]+)", line.group(1))}

    assert set(listed("Attachment")) == {int(a) for a in Attachment}
    assert set(listed("ButtonId")) == {int(b) for b in ButtonId}
    assert set(listed("PressKind")) == {int(k) for k in PressKind}
    assert set(listed("StopReason")) == {int(r) for r in StopReason}
    assert set(listed("WarningCode")) == {int(w) for w in WarningCode}
