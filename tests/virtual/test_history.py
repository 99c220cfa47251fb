"""``gunguard history``: what a real store holds, readably and as stable JSON."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from bench.processes import gunguard_command
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core.clock import RealClock
from gunguard.core.dose import bucket_of
from gunguard.operator.history import FORMAT, collect
from gunguard.sim.bench import DEFAULT_START_WALL, Bench
from gunguard.sim.simulate import close_book, ledger_factory
from gunguard.store.ledger import Ledger, StorageFault
from gunguard.store.treatments import iso

CFG = GunguardConfig()
W0 = DEFAULT_START_WALL
HOUR = 3600.0

TOP = {
    "format",
    "db",
    "schema_version",
    "generated_at",
    "clock",
    "limits",
    "regions",
    "treatments",
    "trips",
    "calibrations",
    "refusals",
}
REFUSAL_KEYS = {"id", "at", "region", "reason", "detail", "session"}
REGION_KEYS = {
    "region",
    "treatments",
    "last_treatment_id",
    "last_contact",
    "dose",
    "status",
    "next_treatment_from",
    "may_continue_until",
}
TREATMENT_KEYS = {
    "id",
    "region",
    "start",
    "end",
    "contact_seconds",
    "seconds_by_band",
    "dose",
    "percussion_seconds",
    "seconds_by_rate",
}
TRIP_KEYS = {"id", "at", "reason", "detail", "region", "config_hash", "cleared_at", "latched"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """calf-left 60 s; calf-right 10 s then overforce, a refusal while latched (reset); neck
    refused; upper-back to its dose limit."""
    path = tmp_path_factory.mktemp("history") / "history.db"
    bench = Bench(CFG, book_factory=ledger_factory(CFG, path))

    def treat(region: str, seconds: float) -> None:
        assert bench.select(region) is None
        bench.gun(ppm=2200, force_n=30)
        bench.run(seconds)

    def pause() -> None:
        bench.select(None)
        bench.gun(force_n=0)
        bench.run(2.0)

    treat("calf-left", 60.0)
    pause()
    treat("calf-right", 10.0)
    bench.gun(force_n=120)
    bench.run(1.0)
    bench.gun(force_n=0)
    bench.run(1.0)
    assert bench.select("calf-right").reason == "trip_latched"
    assert bench.reset()
    assert bench.select("neck").reason == "never_allowed"
    treat("upper-back", 302.0)
    assert bench.trips() == ["overforce", "region_dose"]
    pause()
    bench.close()
    close_book(bench)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_region(data: dict) -> dict[str, dict]:
    return {r["region"]: r for r in data["regions"]}


def test_the_json_schema_is_stable(store):
    data = collect(store, now=W0 + HOUR)
    assert set(data) == TOP
    assert data["format"] == FORMAT == "gunguard-history/1"
    assert data["schema_version"] == 4
    assert data["calibrations"] == []  # (test_calibration_store: with some)
    assert data["limits"] == {"rest_hours": 48.0, "treatment_gap_minutes": 30.0, "from_session": 1}
    assert data["clock"] == {
        "now": iso(W0 + HOUR),
        "newest_record": data["clock"]["newest_record"],
        "trusted": True,
    }
    assert [set(r) for r in data["regions"]] == [REGION_KEYS] * 3
    assert [set(t) for t in data["treatments"]] == [TREATMENT_KEYS] * 3
    assert [set(t) for t in data["trips"]] == [TRIP_KEYS] * 2
    assert set(data["treatments"][0]["seconds_by_band"][0]) == {
        "band",
        "up_to_ppm",
        "seconds",
        "allowed_seconds",  # (added within gunguard-history/1)
    }
    assert [set(r) for r in data["refusals"]] == [REFUSAL_KEYS] * 2


def test_treatments_doses_and_trips(store):
    data = collect(store, now=W0 + HOUR)
    left, right, back = data["treatments"]
    assert [t["region"] for t in (left, right, back)] == ["calf-left", "calf-right", "upper-back"]
    assert left["id"] == 1 and left["start"].startswith("2026-11-20T08:00:0")
    assert 59.0 < left["contact_seconds"] < 60.0
    # the guidance's bands: <= 2400 ppm, and above (None)
    assert [b["up_to_ppm"] for b in left["seconds_by_band"]] == [2400.0, None]
    assert [r["up_to_ppm"] for r in left["seconds_by_rate"]][-1] <= 2400.0 + 25
    # what the treatment's allowance gives each band: 5 min at <= 2400 ppm, 2 min above
    assert [b["allowed_seconds"] for b in left["seconds_by_band"]] == [300.0, 120.0]
    assert left["percussion_seconds"] >= left["contact_seconds"]
    assert left["dose"] == pytest.approx(left["contact_seconds"] / 300.0, abs=1e-4)
    assert back["dose"] >= 1.0
    overforce, dose = data["trips"]
    assert (overforce["reason"], overforce["region"], overforce["latched"]) == (
        "overforce",
        "calf-right",
        False,
    )
    assert overforce["cleared_at"] is not None
    assert (dose["reason"], dose["region"], dose["latched"], dose["cleared_at"]) == (
        "region_dose",
        "upper-back",
        True,
        None,
    )
    assert len(dose["config_hash"]) == 16


def test_refusals_are_listed(store):
    data = collect(store, now=W0 + HOUR)
    latched, neck = data["refusals"]
    assert (latched["region"], latched["reason"]) == ("calf-right", "trip_latched")
    assert (neck["region"], neck["reason"]) == ("neck", "never_allowed")
    assert neck["detail"] == "neck is never treated with a massage gun"
    assert latched["id"] < neck["id"] and latched["session"] == neck["session"] == 1
    only = collect(store, now=W0 + HOUR, region="neck")
    assert [r["region"] for r in only["refusals"]] == ["neck"]


def test_when_each_region_may_next_be_treated(store):
    data = collect(store, now=W0 + HOUR)
    regions = by_region(data)
    left_end = data["treatments"][0]["end"]
    assert regions["calf-left"]["last_contact"] == left_end
    for name in ("calf-left", "calf-right", "upper-back"):
        assert regions[name]["status"] == "resting"
        assert regions[name]["may_continue_until"] is None
    end = collect(store, now=W0)["treatments"][0]["end"]
    assert regions["calf-left"]["next_treatment_from"] == end.replace("2026-11-20", "2026-11-22")
    # right after: calf-left may still continue (30 min gap), upper-back's dose is used up
    soon = by_region(collect(store, now=W0 + 420.0))
    assert soon["calf-left"]["status"] == "continuing"
    assert soon["calf-left"]["may_continue_until"] is not None
    assert soon["upper-back"]["status"] == "resting"  # dose used up: not "continuing"
    later = by_region(collect(store, now=W0 + 49 * HOUR))
    assert {r["status"] for r in later.values()} == {"rest_over"}


def test_an_untrusted_clock_is_said(store, capsys):
    data = collect(store, now=W0 - HOUR)
    assert data["clock"]["trusted"] is False
    assert {r["status"] for r in data["regions"]} == {"clock_untrusted"}


def test_region_filter(store):
    data = collect(store, now=W0 + HOUR, region="calf-right")
    assert [r["region"] for r in data["regions"]] == ["calf-right"]
    assert [t["region"] for t in data["treatments"]] == ["calf-right"]
    assert [t["reason"] for t in data["trips"]] == ["overforce"]
    assert [r["reason"] for r in data["refusals"]] == ["trip_latched"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*gunguard_command(), "history", *args], capture_output=True, text=True, timeout=30
    )


def test_the_cli_shows_a_real_store_readably_and_as_json(store):
    before = digest(store)
    result = run("--db", str(store))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for words in ("Regions", "Treatments", "Trips", "Refusals", "calf-left", "upper-back"):
        assert words in text
    assert "LATCHED" in text and "never_allowed" in text and "neck is never treated" in text
    # the units every command uses: percent of the allowance, m:ss used / allowed per band
    assert "<= 2400 ppm" in text and "> 2400 ppm" in text
    assert "1:00 / 5:00" in text and "0:00 / 2:00" in text  # calf-left: 60 s at 2200 ppm
    assert re.search(r" 10\d\.\d % ", text)  # upper-back: used up (100 % and a tick)
    assert "region_dose" in text
    # (the real clock decides which: the store's times are in virtual November 2026)
    assert any(s in text for s in ("resting: next", "rest over since", "clock untrusted"))
    result = run("--db", str(store), "--json", "--region", "upper-back")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert set(data) == TOP
    assert [t["region"] for t in data["treatments"]] == ["upper-back"]
    assert digest(store) == before  # history only reads


def test_the_cli_refuses_a_broken_store_and_leaves_it(tmp_path):
    missing = run("--db", str(tmp_path / "nothing.db"))  # a fresh machine is not an error
    assert (missing.returncode, missing.stderr) == (0, "")
    assert missing.stdout.startswith("no treatments yet")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00garbage" * 1000)
    before = digest(garbage)
    result = run("--db", str(garbage), "--json")
    assert result.returncode == 4
    assert "file is not a database" in result.stderr and result.stdout == ""
    assert digest(garbage) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.db"]


def test_an_empty_store(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    data = collect(empty, now=W0)
    assert (data["regions"], data["treatments"], data["trips"]) == ([], [], [])
    assert data["refusals"] == []
    assert data["calibrations"] == []
    assert data["schema_version"] == 0


def test_history_reads_while_the_daemon_writes(tmp_path):
    path = tmp_path / "history.db"
    ledger = Ledger(path, resolve_limits(CFG), RealClock())
    try:
        ledger.add("calf-left", bucket_of(2200), 3.0, 3.0, RealClock().wall())
        ledger.flush()
        data = collect(path)
        assert data["treatments"][0]["contact_seconds"] == 3.0
        assert by_region(data)["calf-left"]["status"] == "continuing"
    finally:
        ledger.close()


def test_collect_raises_storage_fault_for_a_foreign_database(tmp_path):
    import sqlite3

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(StorageFault, match="not a gunguard history"):
        collect(foreign)
