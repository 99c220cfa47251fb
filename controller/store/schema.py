"""The treatment store's on-disk format, and the only ways to judge and open it.

One SQLite file (docs/history.md, 'What is stored'), versioned with ``PRAGMA
user_version`` and marked with ``PRAGMA application_id``. Schema changes are
:data:`MIGRATIONS`, each applied atomically together with its version, so a failed one
leaves the file as it was.

A store that cannot be trusted is never replaced, truncated, migrated or written: it
fails ``PRAGMA integrity_check``, is locked, unreadable, foreign or newer than this
code -> :class:`StorageFault`. :func:`open_store` judges an existing file on a
read-only connection before it opens it for writing. The writer is
:mod:`gunguard.store.ledger`; readers go through :mod:`gunguard.store.queries`.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing, suppress
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

#: ``PRAGMA application_id``: marks the file as a gunguard history ("GGhs").
APPLICATION_ID = 0x47476873

_V1 = """
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    opened_wall REAL NOT NULL,
    opened_mono REAL NOT NULL,
    boot_id TEXT,
    pid INTEGER,
    config_hash TEXT NOT NULL,
    gap_s REAL NOT NULL,
    rest_s REAL NOT NULL,
    flushed_wall REAL,
    flushed_mono REAL,
    newest_wall REAL,
    closed_wall REAL
);
CREATE TABLE treatments (
    id INTEGER PRIMARY KEY,
    region TEXT NOT NULL,
    start_wall REAL NOT NULL,
    end_wall REAL NOT NULL,
    dose REAL,
    start_session INTEGER NOT NULL REFERENCES sessions(id),
    end_session INTEGER NOT NULL REFERENCES sessions(id)
);
CREATE INDEX treatments_by_region ON treatments(region, id);
CREATE TABLE treatment_bands (
    treatment_id INTEGER NOT NULL REFERENCES treatments(id),
    band INTEGER NOT NULL,
    up_to_ppm REAL,
    seconds REAL NOT NULL,
    PRIMARY KEY (treatment_id, band)
) WITHOUT ROWID;
CREATE TABLE trips (
    id INTEGER PRIMARY KEY,
    wall REAL NOT NULL,
    clock_offset REAL NOT NULL,
    session INTEGER NOT NULL REFERENCES sessions(id),
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    region TEXT,
    config_hash TEXT NOT NULL,
    cleared_wall REAL
);
CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    wall REAL NOT NULL,
    clock_offset REAL NOT NULL,
    session INTEGER NOT NULL REFERENCES sessions(id),
    kind TEXT NOT NULL,
    region TEXT,
    detail TEXT
);
CREATE TABLE telemetry (
    wall REAL NOT NULL,
    clock_offset REAL NOT NULL,
    session INTEGER NOT NULL,
    rate_ppm REAL NOT NULL,
    force_n REAL NOT NULL,
    power INTEGER NOT NULL,
    region TEXT,
    dose REAL
);
"""

#: Version 2: counted time kept with the rate it was counted at (25 ppm buckets, by their
#: top rate), contact and percussion apart, and the tightest allowance each treatment was
#: judged by; no longer by the band index of whatever config counted it. Version-1 band
#: seconds move to the bucket of their band's top rate (the stricter side), as both
#: contact and percussion; their stored dose stays as a floor.
_V2 = """
CREATE TABLE treatment_rates (
    treatment_id INTEGER NOT NULL REFERENCES treatments(id),
    up_to_ppm REAL NOT NULL,
    contact_s REAL NOT NULL,
    percussion_s REAL NOT NULL,
    PRIMARY KEY (treatment_id, up_to_ppm)
) WITHOUT ROWID;
INSERT INTO treatment_rates (treatment_id, up_to_ppm, contact_s, percussion_s)
    SELECT treatment_id,
           MIN(4000.0, MAX(25.0, 25.0 * (CAST(q AS INTEGER) + (q > CAST(q AS INTEGER))))),
           SUM(seconds), SUM(seconds)
    FROM (SELECT treatment_id, COALESCE(up_to_ppm, 4000.0) / 25.0 AS q, seconds
          FROM treatment_bands)
    GROUP BY 1, 2;
DROP TABLE treatment_bands;
ALTER TABLE treatments ADD COLUMN allowance TEXT;
"""

#: Version 3: the calibrations ``gunguard calibrate`` made, one row per value changed or
#: confirmed (the trusted inputs every limit depends on): when, which config key, the value
#: before and after, how in words, the step's record as JSON (its raw readings), and the
#: calibration file written.
_V3 = """
CREATE TABLE calibrations (
    id INTEGER PRIMARY KEY,
    wall REAL NOT NULL,
    key TEXT NOT NULL,
    old_value REAL,
    new_value REAL NOT NULL,
    how TEXT NOT NULL,
    record TEXT NOT NULL,
    file TEXT NOT NULL,
    config_hash TEXT NOT NULL
);
"""

#: Version 4: treatment plans (docs/plans.md). The plans adopted (their document kept
#: as adopted, so a report reads the prescription the sessions followed); each guided
#: session with the phase it ran and how it ended; its steps with region, target and
#: the contact counted while armed; pain scores (0-10, before/after a session or the
#: next morning); and the progression decision taken at each session's start.
_V4 = """
CREATE TABLE plans (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    patient TEXT NOT NULL,
    start_date TEXT NOT NULL,
    document TEXT NOT NULL,
    source TEXT NOT NULL,
    adopted_wall REAL NOT NULL,
    config_hash TEXT NOT NULL
);
CREATE TABLE plan_sessions (
    id INTEGER PRIMARY KEY,
    plan_id INTEGER NOT NULL REFERENCES plans(id),
    phase INTEGER NOT NULL,
    phase_name TEXT NOT NULL,
    started_wall REAL NOT NULL,
    ended_wall REAL,
    outcome TEXT,
    daemon_session INTEGER REFERENCES sessions(id)
);
CREATE TABLE plan_steps (
    session_id INTEGER NOT NULL REFERENCES plan_sessions(id),
    step INTEGER NOT NULL,
    region TEXT NOT NULL,
    target_s REAL NOT NULL,
    rate_min_ppm REAL NOT NULL,
    rate_max_ppm REAL NOT NULL,
    done_s REAL NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    started_wall REAL,
    ended_wall REAL NOT NULL,
    PRIMARY KEY (session_id, step)
) WITHOUT ROWID;
CREATE TABLE pain_scores (
    id INTEGER PRIMARY KEY,
    wall REAL NOT NULL,
    value INTEGER NOT NULL CHECK (value BETWEEN 0 AND 10),
    timing TEXT NOT NULL CHECK (timing IN ('before', 'after', 'morning')),
    session_id INTEGER REFERENCES plan_sessions(id),
    source TEXT NOT NULL
);
CREATE TABLE progression (
    id INTEGER PRIMARY KEY,
    wall REAL NOT NULL,
    session_id INTEGER NOT NULL REFERENCES plan_sessions(id),
    plan_id INTEGER NOT NULL REFERENCES plans(id),
    from_phase INTEGER NOT NULL,
    to_phase INTEGER NOT NULL,
    held INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""

#: (version, SQL): applied in order, each atomically together with its user_version.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _V1), (2, _V2), (3, _V3), (4, _V4))
SCHEMA_VERSION = MIGRATIONS[-1][0]


class StorageFault(Exception):
    """The store cannot be used; it is left exactly as it is."""

    def __init__(self, path: Path | str, problem: str, code: str | None = None) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem
        self.code = code  # the SQLite error name, when SQLite raised it


def describe_error(exc: BaseException) -> str:
    """An sqlite/OS error in words, with the SQLite code name when there is one."""
    name = getattr(exc, "sqlite_errorname", None)
    text = str(exc) or type(exc).__name__
    return f"{text} ({name})" if name else text


def connect(path: Path, *, mode: str, timeout: float) -> sqlite3.Connection:
    """Open ``path`` (never creating it unless ``mode`` is ``rwc``), in autocommit."""
    uri = f"file:{quote(str(path.absolute()))}?mode={mode}"
    return sqlite3.connect(
        uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
    )


def rollback(conn: sqlite3.Connection) -> None:
    """End a failed transaction, if one is open; the connection may itself be broken."""
    with suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def check_store(conn: sqlite3.Connection, path: Path, *, full: bool = True) -> int:
    """Raise :class:`StorageFault` unless ``conn`` is a sound gunguard store; its version.

    Only reads. Version 0 with no tables is an empty store, ready for the migrations.
    """
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY 1")
        ]
        check = conn.execute("PRAGMA integrity_check" if full else "PRAGMA quick_check")
        problems = [r[0] for r in check.fetchmany(5)]
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorname", None)
        raise StorageFault(path, describe_error(exc), code) from exc
    if problems != ["ok"]:
        raise StorageFault(path, "fails PRAGMA integrity_check: " + "; ".join(problems))
    if app_id not in (0, APPLICATION_ID) or (version == 0 and tables):
        raise StorageFault(
            path,
            f"not a gunguard history (application_id {app_id:#x}, schema {version}, "
            f"tables: {', '.join(tables) or 'none'}); refusing to write into it",
        )
    if version > SCHEMA_VERSION:
        raise StorageFault(
            path,
            f"schema version {version} is newer than this gunguard knows ({SCHEMA_VERSION}): "
            "written by a newer gunguard",
        )
    return version


def migrate(
    conn: sqlite3.Connection,
    path: Path,
    version: int,
    migrations: tuple[tuple[int, str], ...] = MIGRATIONS,
) -> int:
    """Apply every migration above ``version``, each atomically with its user_version."""
    for target, sql in migrations:
        if target <= version:
            continue
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {int(target)}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            rollback(conn)
            raise StorageFault(
                path, f"migration to schema {target} failed: {describe_error(exc)}"
            ) from exc
        log.info("treatment history %s: schema %d -> %d", path, version, target)
        version = target
    return version


def open_store(path: Path, *, timeout: float, durable: bool) -> sqlite3.Connection:
    """``path`` open for writing: judged, in WAL mode, migrated (created when missing).

    ``durable`` is ``synchronous=FULL``: every commit is fsynced, so it survives a power
    cut. Raises :class:`StorageFault` for a store that cannot be trusted, having
    written nothing to it.
    """
    created = [p for p in _companions(path) if not p.exists()]
    exists = path.exists()
    checked = False
    if exists:
        if not path.is_file():
            raise StorageFault(path, "is not a regular file")
        try:
            with path.open("rb") as f:
                f.read(100)
        except OSError as exc:
            raise StorageFault(path, f"cannot read: {exc.strerror or exc}") from exc
        # Judge it on a read-only connection first: a store that fails is never
        # written to. Only when read-only cannot even look (the WAL of a killed writer
        # whose index needs rebuilding) is it judged on the read-write one below.
        try:
            with closing(connect(path, mode="ro", timeout=timeout)) as ro:
                check_store(ro, path)
            checked = True
        except StorageFault as fault:
            code = fault.code or ""
            if not code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
                if not code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                    _remove_new_side_files(created)  # (a lock holder may be using them)
                raise
        except sqlite3.Error as exc:
            _remove_new_side_files(created)
            raise StorageFault(path, describe_error(exc)) from exc
    try:
        conn = connect(path, mode="rw" if exists else "rwc", timeout=timeout)
    except sqlite3.Error as exc:
        raise StorageFault(path, f"cannot open: {describe_error(exc)}") from exc
    try:
        if checked:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        else:
            version = check_store(conn, path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageFault(path, f"cannot use WAL journal mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, path, version)
    except StorageFault:
        conn.close()
        raise
    except sqlite3.Error as exc:
        rollback(conn)
        conn.close()
        raise StorageFault(path, describe_error(exc)) from exc
    return conn


def _companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def _remove_new_side_files(created: list[Path]) -> None:
    """Remove side files a failed read-only check created (never ones that were there)."""
    for p in created:
        with suppress(OSError):
            if p.exists() and (p.name.endswith("-shm") or p.stat().st_size == 0):
                p.unlink()
