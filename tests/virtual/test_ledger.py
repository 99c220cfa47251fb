"""The SQLite treatment ledger: durability, the rest and clock rules, storage faults.

Virtual time for everything that spans minutes or days (the bench with a ledger on a
temporary file, ``restart`` reopening the same file); real threads only where the
writer thread itself is the subject, and then bounded by polling, never by hoping.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bench.processes import gunguard_command
from bench.stores import corrupt, digest, in_private_mounts, listing, make_store
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core.clock import RealClock, VirtualClock
from gunguard.core.dose import bucket_of
from gunguard.core.events import Event
from gunguard.sim.bench import DEFAULT_START_WALL, Bench
from gunguard.sim.simulate import close_book, ledger_factory
from gunguard.store import ledger as ledger_mod
from gunguard.store.ledger import Ledger, StorageFault
from tests.waiting import wait_for

CFG = GunguardConfig()
# A fifth of the default allowances (1 minute at <= 2400 ppm): for the tests that use a
# whole dose up and only care that it is used up, so they play a minute, not five.
SHORT = GunguardConfig.model_validate(
    {
        "limits": {
            "bands": [
                {"up_to_ppm": 2400, "max_minutes": 1.0},
                {"up_to_ppm": 3200, "max_minutes": 0.4},
            ]
        }
    }
)
SHORT_ALLOWANCE_S = 60.0
LOW = bucket_of(2200)  # a rate bucket of the low band
LIMITS = resolve_limits(CFG)
REST = 48 * 3600.0
GAP = 30 * 60.0
REGION = "calf-left"
REPO = Path(__file__).resolve().parents[2]


# -- helpers -----------------------------------------------------------------------------
@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "history.db"


@pytest.fixture
def make_bench(db: Path):
    benches: list[Bench] = []

    def make(path: Path = db, cfg: GunguardConfig = CFG, **options) -> Bench:
        bench = Bench(cfg, book_factory=ledger_factory(cfg, path, **options))
        benches.append(bench)
        return bench

    yield make
    for bench in benches:
        bench.close()
        close_book(bench)


def rows(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql, params).fetchall()


def stored_seconds(path: Path) -> list[tuple]:
    """(treatment id, region, band, contact seconds) by the guidance's bands (0: <= 2400
    ppm, 1: above), summed from the stored rate buckets."""
    return rows(
        path,
        "SELECT t.id, t.region, b.band, COALESCE(SUM(r.contact_s), 0) FROM treatments t"
        " CROSS JOIN (SELECT 0 AS band UNION ALL SELECT 1) b"
        " LEFT JOIN treatment_rates r ON r.treatment_id = t.id AND (r.up_to_ppm > 2400) = b.band"
        " GROUP BY t.id, b.band ORDER BY t.id, b.band",
    )


def treat(bench: Bench, seconds: float, region: str = REGION, ppm: float = 2200) -> None:
    assert bench.select(region) is None
    bench.gun(ppm=ppm, force_n=30)
    bench.run(seconds)


def pause(bench: Bench) -> float:
    """Deselect and lift the gun; returns the wall time of the last counted percussion
    (the motor coasts down after the stop, and that is counted too)."""
    bench.select(None)
    bench.gun(force_n=0)
    last = bench.clock.wall()
    for _ in range(2000):
        bench.run(0.001)
        if bench.supervisor.rate_ppm > 0.0:
            last = bench.clock.wall()
    return last


def sup_seconds(bench: Bench, region: str = REGION) -> list[float]:
    return bench.supervisor.doses()[region].seconds_by_band()


def last_contact(path: Path, region: str = REGION) -> float:
    return rows(
        path, "SELECT end_wall FROM treatments WHERE region = ? ORDER BY id DESC", (region,)
    )[0][0]


def step_wall_to(bench: Bench, wall: float) -> None:
    bench.step_wall(wall - bench.clock.wall())


# -- durability across restarts ------------------------------------------------------------
def test_counted_contact_is_stored_exactly(make_bench, db):
    bench = make_bench()
    treat(bench, 60.0)
    bench.book.flush()
    counted = sup_seconds(bench)
    assert 59.0 < counted[0] < 60.0  # spin-up before the first counted tick
    assert stored_seconds(db) == [(1, REGION, 0, counted[0]), (1, REGION, 1, 0.0)]
    (dose,) = rows(db, "SELECT dose FROM treatments")[0]
    assert dose == pytest.approx(counted[0] / 300.0)


def test_restart_in_the_middle_of_a_treatment_keeps_the_dose(make_bench, db):
    bench = make_bench(cfg=SHORT)
    treat(bench, 20.0)
    before = list(sup_seconds(bench))
    restart_at = bench.now
    bench.restart()
    assert bench.supervisor.doses() == {}  # a new daemon...
    assert bench.select(REGION) is None
    assert sup_seconds(bench) == before  # ...that continues the stored treatment
    bench.run(SHORT_ALLOWANCE_S)
    trip = bench.first("trip", reason="region_dose")
    assert trip is not None
    due = restart_at + (SHORT_ALLOWANCE_S - before[0])  # the allowance in total
    assert due <= trip.t <= due + 0.6  # + spin-up after the restart
    bench.book.flush()
    assert [s for *_, s in stored_seconds(db)] == sup_seconds(bench)
    assert rows(db, "SELECT COUNT(*) FROM treatments") == [(1,)]


def test_restarts_neither_lose_nor_double_count(make_bench, db):
    bench = make_bench()
    assert bench.select(REGION) is None
    bench.gun(ppm=2200, force_n=30)
    total = 0.0
    for _ in range(5):
        start = sup_seconds(bench)[0]
        bench.run(20.0)
        total += sup_seconds(bench)[0] - start
        bench.restart()
        assert stored_seconds(db)[0][3] == pytest.approx(total, abs=1e-9)
        assert bench.select(REGION) is None


def test_a_used_up_dose_stays_used_up_after_a_restart(make_bench, db):
    bench = make_bench(cfg=SHORT)
    treat(bench, SHORT_ALLOWANCE_S + 2.0)
    assert bench.trips() == ["region_dose"]
    assert bench.reset()
    bench.restart()
    bench.reset()  # the restored trip
    refusal = bench.select(REGION)
    assert refusal is not None and refusal.reason == "region_dose"


def test_a_latched_trip_survives_a_restart(make_bench, db):
    bench = make_bench()
    treat(bench, 10.0)
    bench.gun(force_n=120)
    bench.run(1.0)
    assert bench.trips() == ["overforce"]
    bench.restart()
    latched = bench.supervisor.latched
    assert latched is not None and latched.reason == "overforce"
    assert "before this start: a restart does not clear a trip" in latched.detail
    refusal = bench.select(REGION)
    assert refusal is not None and refusal.reason == "trip_latched"
    bench.restart()  # and again: still latched, still one stored trip
    assert bench.supervisor.latched is not None
    assert rows(db, "SELECT reason, cleared_wall FROM trips") == [("overforce", None)]
    assert bench.reset()
    bench.restart()
    assert bench.supervisor.latched is None
    ((cleared,),) = rows(db, "SELECT cleared_wall FROM trips")
    assert cleared is not None
    kinds = [k for (k,) in rows(db, "SELECT kind FROM actions ORDER BY id")]
    assert kinds.count("trip_restored") == 2
    assert kinds.count("reset") == 1


def test_a_dose_never_decreases_in_the_store(db):
    clock = VirtualClock(0.0, DEFAULT_START_WALL)
    first = Ledger(db, LIMITS, clock, background=False)
    first.on_event(Event(0.0, "region", {"region": REGION}))
    first.add(REGION, LOW, 50.0, 50.0, clock.wall())
    first.close()
    second = Ledger(db, LIMITS, clock, background=False)
    assert second.current(REGION, clock.wall()).contact == {LOW: 50.0}
    second.on_event(Event(0.0, "region", {"region": REGION}))
    second.add(REGION, LOW, 1.0, 1.0, clock.wall())
    second._latest[REGION].counted.contact[LOW] = 10.0  # a stale writer with a lower total...
    second.flush()
    second.close()
    assert stored_seconds(db)[0][3] == 50.0  # ...cannot lower it: max() upserts
    ((dose,),) = rows(db, "SELECT dose FROM treatments")
    assert dose == pytest.approx(50.0 / 300.0)


# -- the rest interval -----------------------------------------------------------------------
def test_rest_interval_refuses_and_then_allows_at_the_right_time(make_bench, db):
    bench = make_bench()
    treat(bench, 60.0)
    pause(bench)
    end = last_contact(db)
    bench.reboot()  # the Pi was off meanwhile: time passed, as the (synchronised) clock says
    step_wall_to(bench, end + GAP - 1.0)  # still inside the treatment: may continue
    assert bench.select(REGION) is None
    assert sup_seconds(bench)[0] > 59.0
    bench.select(None)
    bench.reboot()
    step_wall_to(bench, end + GAP)  # the treatment is over: the rest interval applies
    refusal = bench.select(REGION)
    assert refusal is not None and refusal.reason == "rest_interval"
    assert refusal.until == end + REST
    assert "48 h between treatments" in refusal.detail
    event = bench.first("refused", reason="rest_interval")
    assert event is not None and event.fields["until"].startswith("2026-11-22T08:0")
    step_wall_to(bench, end + REST - 0.01)
    refusal = bench.select(REGION)
    assert refusal is not None and refusal.reason == "rest_interval"
    step_wall_to(bench, end + REST)
    assert bench.select(REGION) is None  # exactly 48 h after the last contact
    assert sup_seconds(bench) == [0.0, 0.0]  # a new treatment, a new dose
    bench.gun(force_n=30)
    bench.run(5.0)
    bench.book.flush()
    assert [tid for tid, *_ in stored_seconds(db)] == [1, 1, 2, 2]


def test_other_regions_are_not_held_by_one_regions_rest(make_bench):
    bench = make_bench()
    treat(bench, 30.0)
    pause(bench)
    bench.reboot()
    bench.step_wall(GAP + 60.0)
    assert bench.select(REGION).reason == "rest_interval"  # type: ignore[union-attr]
    assert bench.select("calf-right") is None


# -- clock trust -------------------------------------------------------------------------------
def test_clock_stepping_back_refuses_clock_untrusted(make_bench, db):
    bench = make_bench()
    treat(bench, 30.0)
    pause(bench)
    bench.step_wall(-2 * 3600.0)
    refusal = bench.select(REGION)
    assert refusal is not None and refusal.reason == "clock_untrusted"
    assert "earlier than the newest stored record" in refusal.detail
    assert "synchronise it (NTP)" in refusal.detail
    assert bench.select("calf-right") is None  # never treated: no rest to judge
    bench.select(None)
    bench.restart()  # a restart does not make the clock trusted
    assert bench.select(REGION).reason == "clock_untrusted"  # type: ignore[union-attr]
    bench.step_wall(2 * 3600.0)  # synchronised again
    assert bench.select(REGION) is None
    assert sup_seconds(bench)[0] > 29.0  # the same treatment goes on
    kinds = [k for (k,) in rows(db, "SELECT kind FROM actions ORDER BY id")]
    assert "clock_step" in kinds


def test_a_clock_glitch_back_and_forth_moves_nothing(make_bench, db):
    bench = make_bench()
    treat(bench, 30.0)
    bench.book.flush()
    end = last_contact(db)
    bench.step_wall(-3600.0)
    bench.run(10.0)  # contact goes on meanwhile, stamped on the session clock
    bench.step_wall(3600.0)
    stopped = pause(bench)
    assert last_contact(db) == pytest.approx(stopped, abs=0.002)
    assert 10.0 < stopped - end < 11.0  # 10 s more, then the coast-down
    assert bench.select(REGION) is None  # trusted again, same treatment


def test_a_forward_step_within_a_session_is_not_rest(make_bench, db):
    """NTP correcting a stale boot clock by 49 h: no time passed, the treatment goes on."""
    bench = make_bench()
    treat(bench, 60.0)
    pause(bench)
    end = last_contact(db)
    bench.step_wall(49 * 3600.0)
    bench.restart()  # the supervisor asks the store again
    assert bench.select(REGION) is None
    assert sup_seconds(bench)[0] > 59.0  # same treatment, dose kept
    assert last_contact(db) == pytest.approx(end + 49 * 3600.0)  # moved with the clock


def test_a_stale_boot_clock_then_ntp_stamps_the_right_times(make_bench, db):
    """Boot without the time: only never-treated regions arm; NTP then fixes their stamps."""
    bench = make_bench()
    treat(bench, 30.0)
    pause(bench)
    bench.reboot()
    bench.step_wall(-3 * 86400.0)  # booted with a clock three days behind
    assert bench.select(REGION).reason == "clock_untrusted"  # type: ignore[union-attr]
    treat(bench, 20.0, region="calf-right")
    stopped = pause(bench)
    bench.step_wall(3 * 86400.0 + 600.0)  # NTP: the real time
    bench.book.flush()
    right_end = last_contact(db, "calf-right")
    assert right_end == pytest.approx(stopped + 3 * 86400.0 + 600.0, abs=0.002)
    assert bench.select(REGION) is None


def test_records_keep_their_clock_offset(make_bench, db):
    bench = make_bench()
    treat(bench, 5.0)
    pause(bench)
    bench.step_wall(-60.0)
    bench.select("calf-right")
    bench.step_wall(600.0)
    bench.book.flush()
    now = bench.clock.wall()
    for wall, offset in rows(db, "SELECT wall, clock_offset FROM actions"):
        assert wall <= now + 0.01
        assert offset == pytest.approx(now - bench.now)  # all on the final clock


# -- storage faults ----------------------------------------------------------------------------
def assert_refused_storage(ledger: Ledger, path: Path, words: str) -> None:
    assert ledger.fault is not None
    assert words in str(ledger.fault)
    refusal = ledger.admit(REGION, DEFAULT_START_WALL)
    assert refusal is not None and refusal.reason == "storage_fault"
    assert str(path) in refusal.detail and words in refusal.detail
    assert ledger.restored_trip() is None


def test_a_corrupt_store_is_left_byte_identical_and_refused(make_bench, db):
    make_store(db)
    corrupt(db)
    before = listing(db.parent)
    bench = make_bench()
    ledger = bench.book
    assert isinstance(ledger, Ledger)
    assert ledger.fault is not None and "integrity_check" in str(ledger.fault)
    refusal = bench.select(REGION)
    assert refusal is not None and refusal.reason == "storage_fault"
    assert str(db) in refusal.detail
    assert bench.first("refused", reason="storage_fault") is not None
    bench.restart()
    close_book(bench)
    assert listing(db.parent) == before  # nothing written, created, removed or truncated


def test_a_store_failing_integrity_check_is_refused(db):
    make_store(db)
    with sqlite3.connect(db) as conn:  # an index that disagrees with its table
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "UPDATE sqlite_schema SET sql = replace(sql, 'region, id', 'id, region')"
            " WHERE name = 'treatments_by_region'"
        )
    before = digest(db)
    ledger = Ledger(db, LIMITS, VirtualClock(), background=False)
    assert_refused_storage(ledger, db, "fails PRAGMA integrity_check")
    ledger.close()
    assert digest(db) == before


def test_garbage_is_not_a_database(db):
    db.write_bytes(b"not a database, just bytes\n" * 200)
    before = listing(db.parent)
    ledger = Ledger(db, LIMITS, VirtualClock(), background=False)
    assert_refused_storage(ledger, db, "file is not a database")
    ledger.close()
    assert listing(db.parent) == before


def test_a_foreign_database_is_not_written_into(db):
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
    before = digest(db)
    ledger = Ledger(db, LIMITS, VirtualClock(), background=False)
    assert_refused_storage(ledger, db, "not a gunguard history")
    assert digest(db) == before


def test_a_newer_schema_is_refused(db):
    make_store(db)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    before = digest(db)
    ledger = Ledger(db, LIMITS, VirtualClock(), background=False)
    assert_refused_storage(ledger, db, "schema version 99 is newer")
    assert digest(db) == before


def test_a_directory_is_not_a_store(tmp_path):
    ledger = Ledger(tmp_path, LIMITS, VirtualClock(), background=False)
    assert_refused_storage(ledger, tmp_path, "is not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_store_is_refused(db):
    make_store(db)
    db.chmod(0)
    ledger = Ledger(db, LIMITS, VirtualClock(), background=False)
    assert_refused_storage(ledger, db, "cannot read")


def test_a_locked_store_is_refused_at_open(db):
    make_store(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        ledger = Ledger(db, LIMITS, VirtualClock(), background=False, open_timeout_s=0.2)
        assert_refused_storage(ledger, db, "database is locked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_lock_while_running_trips_and_loses_nothing(make_bench, db):
    bench = make_bench(busy_timeout_s=0.05)
    treat(bench, 10.0)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the store
    bench.run(3.0)
    trip = bench.first("trip", reason="storage_fault")
    assert trip is not None
    assert "database is locked" in trip.fields["detail"]
    assert str(db) in trip.fields["detail"]
    assert not bench.power_on
    bench.reset()
    refusal = bench.select(REGION)
    assert refusal is not None and refusal.reason == "storage_fault"
    holder.execute("ROLLBACK")
    holder.close()
    bench.run(2.0)
    assert bench.select(REGION) is None  # the retry stored everything counted: healthy again
    assert bench.book.fault is None  # type: ignore[attr-defined]
    assert [s for *_, s in stored_seconds(db)] == sup_seconds(bench)
    assert ("storage_fault",) in rows(db, "SELECT reason FROM trips")


def test_a_full_store_while_running_trips_and_loses_nothing(make_bench, db):
    bench = make_bench()
    treat(bench, 5.0)
    ledger = bench.book
    assert isinstance(ledger, Ledger)
    ledger.flush()
    with ledger.connection() as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
    bench.run(30.0)  # telemetry needs new pages: the "disk" is full
    trip = bench.first("trip", reason="storage_fault")
    assert trip is not None and "database or disk is full" in trip.fields["detail"]
    counted = list(sup_seconds(bench))
    with ledger.connection() as conn:
        conn.execute("PRAGMA max_page_count = 1000000")
    bench.run(2.0)
    bench.reset()
    assert bench.select(REGION) is None  # retried first: nothing was lost
    assert ledger.fault is None
    assert [s for *_, s in stored_seconds(db)] == counted


def test_migration_from_user_version_0(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()  # a zero-byte file is an empty SQLite database at version 0
    blank = tmp_path / "blank.db"
    sqlite3.connect(blank).execute("PRAGMA user_version = 0").connection.close()
    for path in (empty, blank):
        ledger = Ledger(path, LIMITS, VirtualClock(), background=False)
        assert ledger.fault is None
        ledger.close()
        assert rows(path, "PRAGMA user_version") == [(ledger_mod.SCHEMA_VERSION,)]
        assert rows(path, "PRAGMA application_id") == [(ledger_mod.APPLICATION_ID,)]
        assert rows(path, "PRAGMA journal_mode") == [("wal",)]


def test_migrations_run_in_order_atomically_and_keep_data(db):
    make_store(db)
    seconds = stored_seconds(db)
    conn = sqlite3.connect(db, isolation_level=None)
    now = ledger_mod.SCHEMA_VERSION
    more = (now + 1, "CREATE TABLE notes (treatment_id INTEGER, text TEXT)")
    bad = (now + 2, "CREATE TABLE more (x); INSERT INTO nowhere VALUES (1)")
    assert ledger_mod.migrate(conn, db, now, (*ledger_mod.MIGRATIONS, more)) == now + 1
    with pytest.raises(StorageFault, match=f"migration to schema {now + 2} failed: no such table"):
        ledger_mod.migrate(conn, db, now + 1, (*ledger_mod.MIGRATIONS, more, bad))
    assert conn.execute("PRAGMA user_version").fetchone() == (now + 1,)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    assert "notes" in tables and "more" not in tables  # the failed one left no trace
    conn.close()
    assert stored_seconds(db) == seconds


# -- real filesystems: read-only, full (private mount namespace; root or user namespaces) ----


OPEN_AND_REPORT = """
    import json, sys
    from gunguard.core.clock import VirtualClock
    from gunguard.config.resolve import resolve_limits
    from gunguard.config.schema import GunguardConfig
    from gunguard.store.ledger import Ledger
    limits = resolve_limits(GunguardConfig())
    ledger = Ledger(sys.argv[1] if len(sys.argv) > 1 else "{path}", limits,
                    VirtualClock(), background=False)
    refusal = ledger.admit("calf-left", 1.9e9)
    print(json.dumps({{"fault": str(ledger.fault), "refusal": refusal and refusal.reason}}))
"""


def test_a_store_on_a_read_only_filesystem_is_refused_and_untouched(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    make_store(folder / "history.db")
    before = listing(folder)
    for name in ("history.db", "new.db"):
        out = in_private_mounts(
            f"mount --bind {folder} {folder}; mount -o remount,bind,ro {folder}",
            OPEN_AND_REPORT.format(path=folder / name),
        )
        assert out["refusal"] == "storage_fault"
        assert str(folder / name) in out["fault"]
    assert listing(folder) == before


def test_a_store_on_a_full_disk_is_refused_and_not_truncated(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    original = tmp_path / "original.db"
    make_store(original)
    fill = f"dd if=/dev/zero of={folder}/filler bs=4k 2>/dev/null || true"
    mount = f"mount -t tmpfs -o size=256k tmpfs {folder}"
    out = in_private_mounts(
        f"{mount}; cp {original} {folder}/history.db; {fill}; "
        f"sha256sum {folder}/history.db > {folder}/../sum-before",
        OPEN_AND_REPORT.format(path=folder / "history.db")
        + f"""
    import hashlib, pathlib
    data = pathlib.Path("{folder}/history.db").read_bytes()
    print(json.dumps({{"fault": str(ledger.fault), "refusal": refusal and refusal.reason,
                      "same": hashlib.sha256(data).hexdigest() ==
                              hashlib.sha256(pathlib.Path("{original}").read_bytes()).hexdigest()}}))
""",
    )
    assert out["refusal"] == "storage_fault"
    assert "full" in out["fault"]
    assert out["same"]  # the store was neither replaced nor truncated


def test_a_disk_filling_up_while_running_trips_then_recovers(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    code = f"""
    import json
    from gunguard.core.clock import VirtualClock
    from gunguard.config.resolve import resolve_limits
    from gunguard.config.schema import GunguardConfig
    from gunguard.core.events import Event
    from gunguard.store.ledger import Ledger
    import subprocess
    faults = []
    clock = VirtualClock(0.0, 1.8e9)
    limits = resolve_limits(GunguardConfig())
    ledger = Ledger("{folder}/history.db", limits, clock, background=False,
                    on_fault=faults.append, probe=lambda: (2200.0, 30.0, True, "calf-left"))
    ledger.on_event(Event(0.0, "region", {{"region": "calf-left"}}))
    subprocess.run("dd if=/dev/zero of={folder}/filler bs=4k 2>/dev/null", shell=True)
    total = 0.0
    for _ in range(20000):  # 20 s of ticks: the WAL and telemetry need room
        clock.advance(0.001)
        ledger.add("calf-left", {LOW}, 0.001, 0.001, clock.wall())
        ledger.pump()  # what the bench does between ticks
        total += 0.001
    full = str(ledger.fault)
    subprocess.run(["rm", "{folder}/filler"])
    clock.advance(2.0)
    stored = ledger.flush()
    ledger.close()
    import sqlite3
    (seconds,), = sqlite3.connect("{folder}/history.db").execute(
        "SELECT contact_s FROM treatment_rates WHERE up_to_ppm = 2200").fetchall()
    print(json.dumps({{"faults": faults, "full": full, "stored": stored,
                      "seconds": seconds, "total": total}}))
    """
    out = in_private_mounts(f"mount -t tmpfs -o size=512k tmpfs {folder}", code)
    assert len(out["faults"]) == 1 and "full" in out["faults"][0]
    assert "full" in out["full"]
    assert out["stored"]
    assert out["seconds"] == pytest.approx(out["total"], abs=1e-6)


# -- the writer thread (real time, bounded by polling) ------------------------------------------
def test_the_writer_commits_within_the_flush_interval(db):
    clock = RealClock()
    ledger = Ledger(db, LIMITS, clock)
    try:
        ledger.on_event(Event(clock.monotonic(), "region", {"region": REGION}))
        ledger.add(REGION, LOW, 0.25, 0.25, clock.wall())
        # Nobody asks for a flush: the writer commits by itself (how soon is measured
        # by the kill soak and `make bench`, not asserted here).
        wait_for(lambda: bool(rows(db, "SELECT 1 FROM treatment_rates")), deadline=20.0)
        ledger.on_event(Event(clock.monotonic(), "trip", {"reason": "overforce", "detail": "x"}))
        wait_for(lambda: bool(rows(db, "SELECT 1 FROM trips")), deadline=20.0)
    finally:
        ledger.close()


def test_the_hot_path_never_waits_for_the_disk(db):
    """While a commit holds the connection (here: forever), add() still returns at once."""
    clock = RealClock()
    ledger = Ledger(db, LIMITS, clock)
    try:
        ledger.on_event(Event(clock.monotonic(), "region", {"region": REGION}))
        with ledger.connection():  # the disk is "stuck" until this block ends
            done = threading.Event()

            def loop_thread() -> None:
                for _ in range(10_000):
                    ledger.add(REGION, LOW, 0.001, 0.001, clock.wall())
                done.set()

            threading.Thread(target=loop_thread, daemon=True).start()
            assert done.wait(20.0), "add() blocked while the store was busy"
        ledger.flush()
        assert stored_seconds(db)[0][3] == pytest.approx(10.0)
    finally:
        ledger.close()


def test_a_write_failure_calls_the_fault_handler_from_the_writer(db):
    clock = RealClock()
    faults: list[tuple[str, str]] = []
    ledger = Ledger(
        db,
        LIMITS,
        clock,
        busy_timeout_s=0.05,
        on_fault=lambda d: faults.append((threading.current_thread().name, d)),
    )
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        ledger.add(REGION, LOW, 1.0, 1.0, clock.wall())
        wait_for(lambda: bool(faults))
        assert faults[0][0] == "gunguard-ledger"
        assert "database is locked" in faults[0][1]
        holder.execute("ROLLBACK")
        wait_for(lambda: ledger.fault is None, deadline=5.0)
        assert len(faults) == 1
        assert stored_seconds(db)[0][3] == 1.0
    finally:
        holder.close()
        ledger.close()


# -- telemetry -------------------------------------------------------------------------------
def test_telemetry_is_downsampled_and_bounded(make_bench, db):
    bench = make_bench(telemetry_max_rows=100)
    treat(bench, 30.0)
    pause(bench)
    bench.book.flush()
    samples = rows(db, "SELECT rate_ppm, force_n, power, region, dose FROM telemetry")
    active = [s for s in samples if s[2]]
    assert 295 <= len(active) <= 305  # 10 Hz over 30 s
    rate, force, _, region, dose = active[-1]
    assert 2150 < rate < 2250 and 25 < force < 35 and region == REGION
    assert dose == pytest.approx(sup_seconds(bench)[0] / 300.0, abs=0.002)
    bench.restart()  # pruned at open, oldest first
    assert rows(db, "SELECT COUNT(*) FROM telemetry")[0][0] <= 100 + 1


# -- the daemon's default location -----------------------------------------------------------
def test_default_storage_path():
    assert ledger_mod.default_storage_path(CFG, {}) == Path("/var/lib/gunguard/history.db")
    env = {"STATE_DIRECTORY": "/var/lib/gunguard:/var/lib/other"}
    assert ledger_mod.default_storage_path(CFG, env) == Path("/var/lib/gunguard/history.db")
    cfg = GunguardConfig.model_validate({"storage": {"path": "/data/h.db"}})
    assert ledger_mod.default_storage_path(cfg, env) == Path("/data/h.db")


def test_open_ledger_creates_the_folder(tmp_path):
    cfg = GunguardConfig.model_validate({"storage": {"path": str(tmp_path / "a" / "b.db")}})
    ledger = ledger_mod.open_ledger(cfg, VirtualClock(), background=False)
    assert ledger.fault is None
    ledger.close()
    assert (tmp_path / "a" / "b.db").is_file()


# -- scenarios through `gunguard simulate --json` (the store is real: a temp file or --db) ----


def simulate(
    tmp_path: Path, scenario: str, *args: str, start: str = "2026-11-20T08:00:00Z"
) -> tuple[list[dict], float]:
    path = tmp_path / f"scenario-{len(list(tmp_path.glob('scenario-*')))}.yaml"
    path.write_text(f"start_wall_clock: '{start}'\n" + textwrap.dedent(scenario))
    t0 = time.monotonic()
    result = subprocess.run(
        [*gunguard_command(), "simulate", str(path), "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - t0
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()], elapsed


def of(lines: list[dict], event: str, **fields) -> list[dict]:
    return [
        e for e in lines if e["event"] == event and all(e.get(k) == v for k, v in fields.items())
    ]


def test_simulate_restart_mid_treatment_keeps_the_dose(tmp_path):
    (tmp_path / "short.yaml").write_text(
        "limits:\n  bands:\n    - {up_to_ppm: 2400, max_minutes: 1.0}\n"
        "    - {up_to_ppm: 3200, max_minutes: 0.4}\n"
    )
    lines, _ = simulate(
        tmp_path,
        """\
        config: short.yaml
        duration: 100
        steps:
          - {at: 0, region: calf-left}
          - {at: 0, gun: {ppm: 2200, force_n: 30}}
          - {at: 20, restart: true}
          - {at: 20, region: calf-left}
        expect:
          - {trip: region_dose, between: [60.0, 61.0]}
        """,
    )
    assert of(lines, "restart") == [{"t": 20.0, "event": "restart"}]
    (trip,) = of(lines, "trip")
    assert trip["reason"] == "region_dose"
    assert 60.0 <= trip["t"] <= 61.0  # the minute across the restart, not a minute after it
    assert lines[-1]["regions"]["calf-left"]["dose"] >= 1.0


def test_simulate_rest_interval_then_allowed(tmp_path):
    lines, _ = simulate(
        tmp_path,
        """\
        duration: 200
        steps:
          - {at: 0, region: calf-left}
          - {at: 0, gun: {ppm: 2200, force_n: 30}}
          - {at: 120, region: null}
          - {at: 130, reboot: true}
          - {at: 130, wall_clock: "+47h"}
          - {at: 131, region: calf-left}
          - {at: 140, wall_clock: "+1h"}
          - {at: 141, region: calf-left}
        expect:
          - {refused: rest_interval, region: calf-left, between: [131, 131]}
        """,
    )
    assert of(lines, "wall_clock")[0]["step_s"] == 47 * 3600.0
    (refused,) = of(lines, "refused")
    assert refused["t"] == 131.0 and refused["reason"] == "rest_interval"
    until = dt.datetime.fromisoformat(refused["until"])  # 48 h after the last percussion
    stopped = dt.datetime(2026, 11, 22, 8, 2, tzinfo=dt.UTC)  # (the stop at 120 s, 08:02:00)
    assert 0.0 < (until - stopped).total_seconds() < 1.0  # and the coast-down after it
    assert "allowed from 2026-11-22T08:0" in refused["detail"]
    assert of(lines, "region", region="calf-left")[-1]["t"] == 141.0
    assert lines[-1]["regions"]["calf-left"]["contact_seconds"] < 60.0  # a new treatment


def test_simulate_clock_stepping_back_refuses(tmp_path):
    lines, _ = simulate(
        tmp_path,
        """\
        duration: 100
        steps:
          - {at: 0, region: calf-left}
          - {at: 0, gun: {ppm: 2200, force_n: 30}}
          - {at: 30, region: null}
          - {at: 40, wall_clock: "-2h"}
          - {at: 41, region: calf-left}
          - {at: 42, region: calf-right}
        expect:
          - {refused: clock_untrusted, region: calf-left}
        """,
    )
    (refused,) = of(lines, "refused")
    assert refused["reason"] == "clock_untrusted" and refused["region"] == "calf-left"
    assert "earlier than the newest stored record" in refused["detail"]
    assert of(lines, "region", region="calf-right")  # never treated: allowed


def test_simulate_db_keeps_history_between_runs_and_a_bad_db_is_refused(tmp_path):
    store = tmp_path / "history.db"
    first = """\
    duration: 60
    steps:
      - {at: 0, region: calf-left}
      - {at: 0, gun: {ppm: 2200, force_n: 30}}
    """
    simulate(tmp_path, first, "--db", str(store))
    later = "2026-11-20T09:00:00Z"  # an hour later: the treatment is over, rest applies
    lines, _ = simulate(tmp_path, first, "--db", str(store), start=later)
    assert of(lines, "refused", reason="rest_interval", region="calf-left")
    corrupt(store)
    before = listing(tmp_path)
    lines, _ = simulate(tmp_path, first, "--db", str(store), start=later)
    assert of(lines, "refused", reason="storage_fault", region="calf-left")
    assert {k: v for k, v in listing(tmp_path).items() if k.endswith(".db")} == {
        k: v for k, v in before.items() if k.endswith(".db")
    }


def test_simulate_is_deterministic(tmp_path):
    scenario = """\
    duration: 120
    steps:
      - {at: 0, region: calf-left}
      - {at: 0, gun: {ppm: 2200, force_n: 30}}
      - {at: 30, restart: true}
      - {at: 31, region: calf-left}
      - {at: 60, wall_clock: "+49h"}
      - {at: 90, wall_clock: "-2h"}
    """
    first, _ = simulate(tmp_path, scenario)
    second, _ = simulate(tmp_path, scenario)
    assert first == second


def test_a_reloaded_config_reaches_the_ledger(db):
    first = Ledger(db, LIMITS, VirtualClock(0.0, DEFAULT_START_WALL), background=False)
    first.on_event(Event(0.0, "region", {"region": REGION}))
    first.add(REGION, LOW, 10.0, 10.0, DEFAULT_START_WALL)
    first.close()
    clock = VirtualClock(0.0, DEFAULT_START_WALL + 50 * 3600.0)  # a later boot
    current = {"limits": LIMITS}
    ledger = Ledger(db, LIMITS, clock, background=False)
    ledger.follow_limits(lambda: (current["limits"], "tag"))
    assert ledger.admit(REGION, clock.wall()) is None  # 48 h are over
    reloaded = GunguardConfig.model_validate({"limits": {"rest_hours": 72}})
    current["limits"] = resolve_limits(reloaded)  # a reload
    refusal = ledger.admit(REGION, clock.wall())
    assert refusal is not None and refusal.reason == "rest_interval"
    assert refusal.until == DEFAULT_START_WALL + 72 * 3600.0
    ledger.close()


@pytest.mark.realtime
def test_the_daemon_starts_on_a_broken_store_and_arms_nothing(tmp_path):
    store = tmp_path / "state" / "history.db"
    store.parent.mkdir()
    store.write_bytes(b"garbage " * 512)
    before = listing(store.parent)
    config = tmp_path / "gunguard.yaml"
    config.write_text(
        "hardware: {pin_factory: mock}\nloop: {max_loop_gap_ms: 100}\n"
        f'storage: {{path: "{store}"}}\n'
    )
    scenario = tmp_path / "arm.yaml"
    scenario.write_text(
        "duration: 1\nsteps:\n  - {at: 0, gun: {ppm: 2200, force_n: 30}}\n"
        "  - {at: 0, region: calf-left}\n"
    )
    result = subprocess.run(
        [*gunguard_command(), "run", "--config", str(config), "--sim-gun", str(scenario), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(s) for s in result.stdout.splitlines() if s.startswith("{")]
    assert [e["reason"] for e in of(lines, "refused")] == ["storage_fault"]
    assert not of(lines, "power", on=True)
    assert "treatment history unavailable" in result.stderr and str(store) in result.stderr
    assert listing(store.parent) == before


@pytest.mark.realtime
def test_a_simulated_gun_never_writes_into_the_real_history(tmp_path):
    """``run --sim-gun`` without storage.path: a temporary store, each run on its own."""
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "gunguard.yaml"
    config.write_text("hardware: {pin_factory: mock}\nloop: {max_loop_gap_ms: 100}\n")
    scenario = tmp_path / "arm.yaml"
    scenario.write_text(
        "duration: 1.5\nsteps:\n  - {at: 0, gun: {ppm: 2200, force_n: 30}}\n"
        "  - {at: 0, region: calf-left}\n"
    )
    contact = []
    for _ in range(2):
        result = subprocess.run(
            [*gunguard_command(), "run", "--config", str(config), "--sim-gun", str(scenario)],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "STATE_DIRECTORY": str(state)},
        )
        assert result.returncode == 0, result.stderr
        line = next(s for s in result.stdout.splitlines() if "calf-left" in s and "contact" in s)
        contact.append(float(line.split("contact")[1].split()[0]))
    assert list(state.iterdir()) == []
    assert contact[1] < 1.5  # the second run did not continue the first one's treatment


def test_a_long_running_daemon_starts_a_new_treatment_after_the_rest(make_bench):
    bench = make_bench(cfg=SHORT)
    treat(bench, SHORT_ALLOWANCE_S + 2.0)  # the dose is used up: region_dose
    assert bench.reset()
    bench.clock.advance(49 * 3600.0)  # the daemon idles for 49 h (monotonic time passes)
    assert bench.book.current(REGION, bench.clock.wall()) is None  # a new treatment
    assert bench.select(REGION) is None


def test_a_version_1_store_keeps_its_counted_time_by_rate(db):
    """Band seconds of schema 1 move to the bucket of their band's top rate (the stricter
    side) as contact and percussion; the stored dose stays a floor; nothing is lost."""
    conn = sqlite3.connect(db, isolation_level=None)
    ledger_mod.migrate(conn, db, 0, ledger_mod.MIGRATIONS[:1])
    conn.executescript(
        "INSERT INTO sessions (id, opened_wall, opened_mono, config_hash, gap_s, rest_s)"
        f" VALUES (1, {DEFAULT_START_WALL}, 0, 'x', 1800, 172800);"
        "INSERT INTO treatments VALUES"
        f" (1, 'calf-left', {DEFAULT_START_WALL}, {DEFAULT_START_WALL + 130}, 0.6, 1, 1);"
        "INSERT INTO treatment_bands VALUES"
        " (1, 0, 2400, 100.0), (1, 1, 3200, 30.0), (1, 2, NULL, 1);"
    )
    assert ledger_mod.migrate(conn, db, 1) == ledger_mod.SCHEMA_VERSION
    conn.close()
    assert rows(db, "SELECT up_to_ppm, contact_s, percussion_s FROM treatment_rates") == [
        (2400.0, 100.0, 100.0),
        (3200.0, 30.0, 30.0),
        (4000.0, 1.0, 1.0),
    ]
    ledger = Ledger(db, LIMITS, VirtualClock(0.0, DEFAULT_START_WALL + 200), background=False)
    counted = ledger.current(REGION, DEFAULT_START_WALL + 200)
    assert counted is not None and counted.dose_floor == 0.6
    assert sum(counted.contact.values()) == 131.0
    ledger.close()
