"""Calibrations in the treatment history: schema 3's table, written by ``gunguard
calibrate``, read by ``gunguard history`` (and its ``--json``, fields only added).
(The ``history`` command line itself: tests/virtual/test_history.py.)"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core.clock import VirtualClock
from gunguard.operator.history import FORMAT, collect, history
from gunguard.sim.bench import DEFAULT_START_WALL
from gunguard.store import schema
from gunguard.store.calibrations import CalibrationEntry, record_calibrations
from gunguard.store.ledger import Ledger, StorageFault
from gunguard.store.queries import open_reader

W0 = DEFAULT_START_WALL
ZERO = CalibrationEntry(
    "hardware.force_sensor.zero",
    0.05,
    0.0512,
    "64 readings over 1.3 s with nothing on the head",
    {"readings": [0.0511, 0.0513], "at": "2026-11-20T08:00:00Z"},
)
SCALE = CalibrationEntry(
    "hardware.force_sensor.newtons_per_unit", 300.0, 287.4, "a 2 kg weight", {"weight_kg": 2.0}
)
CALIBRATION_KEYS = {
    "id",
    "at",
    "key",
    "old_value",
    "new_value",
    "how",
    "file",
    "config_hash",
    "record",
}


def record(db: Path, *entries: CalibrationEntry) -> None:
    record_calibrations(
        db, entries, wall=W0, file=Path("/etc/gunguard/cal.yaml"), config_hash="abc"
    )


def tables(db: Path) -> set[str]:
    with closing(sqlite3.connect(db)) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}


def test_schema_3_adds_the_calibrations_table_and_keeps_2():
    versions = [v for v, _ in schema.MIGRATIONS]
    assert versions[:3] == [1, 2, 3] and schema.SCHEMA_VERSION >= 3
    assert "CREATE TABLE calibrations" in schema.MIGRATIONS[2][1]
    assert "calibrations" not in schema.MIGRATIONS[1][1]


def test_a_calibration_creates_the_store_on_a_fresh_machine_and_history_shows_it(tmp_path):
    db = tmp_path / "history.db"
    record(db, ZERO, SCALE)
    data = collect(db, now=W0 + 60)
    assert data["format"] == FORMAT and data["schema_version"] == schema.SCHEMA_VERSION
    zero, scale = data["calibrations"]
    assert set(zero) == CALIBRATION_KEYS
    assert zero == {
        "id": 1,
        "at": "2026-11-20T08:00:00Z",
        "key": "hardware.force_sensor.zero",
        "old_value": 0.05,
        "new_value": 0.0512,
        "how": "64 readings over 1.3 s with nothing on the head",
        "file": "/etc/gunguard/cal.yaml",
        "config_hash": "abc",
        "record": {"readings": [0.0511, 0.0513], "at": "2026-11-20T08:00:00Z"},
    }
    assert scale["record"] == {"weight_kg": 2.0}
    assert (data["treatments"], data["trips"]) == ([], [])


def test_the_daemon_opens_a_store_with_calibrations_and_calibrate_writes_beside_it(tmp_path):
    db = tmp_path / "history.db"
    ledger = Ledger(db, resolve_limits(GunguardConfig()), VirtualClock(0.0, W0))
    try:
        assert ledger.fault is None
        record(db, ZERO)  # while the daemon holds it (WAL)
        assert ledger.fault is None
    finally:
        ledger.close()
    with open_reader(db) as store:
        assert [c.key for c in store.calibrations()] == ["hardware.force_sensor.zero"]


def test_a_version_2_store_is_read_without_calibrations_and_migrated_when_written(tmp_path):
    db = tmp_path / "history.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        schema.migrate(conn, db, 0, schema.MIGRATIONS[:2])
    data = collect(db, now=W0)
    assert (data["schema_version"], data["calibrations"]) == (2, [])
    assert "calibrations" not in tables(db)  # history never migrates
    record(db, ZERO)
    assert "calibrations" in tables(db)
    assert len(collect(db, now=W0)["calibrations"]) == 1


def test_an_unsound_store_refuses_the_record_and_is_left_as_it_was(tmp_path):
    garbage = tmp_path / "history.db"
    garbage.write_bytes(b"\x00not a database" * 500)
    before = garbage.read_bytes()
    with pytest.raises(StorageFault):
        record(garbage, ZERO)
    assert garbage.read_bytes() == before


def test_history_shows_calibrations_readably(tmp_path, capsys):
    db = tmp_path / "history.db"
    record(db, ZERO, SCALE)
    assert history(db, region=None, as_json=False) == 0
    out = capsys.readouterr().out
    assert "Calibrations" in out
    assert "hardware.force_sensor.newtons_per_unit" in out and "287.4" in out


def test_history_json_lists_calibrations_whatever_the_region(tmp_path, capsys):
    db = tmp_path / "history.db"
    record(db, ZERO, SCALE)
    assert history(db, region="calf-left", as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["new_value"] for c in data["calibrations"]] == [0.0512, 287.4]  # not per region
