"""Recording calibrations in the treatment history (the ``calibrations`` table, schema 3).

The calibration values are trusted inputs: every force and rate limit the history's
doses were judged by depends on them. So each calibration is kept next to the
treatments and trips it affects, with the readings behind it, and ``gunguard history``
shows it. ``gunguard calibrate`` records here before it puts the new calibration
file in place: a calibration that could not be recorded does not take effect.

The store is opened like the daemon opens it (:func:`gunguard.store.schema.open_store`:
judged first, never written when unsound, migrated when older); a running daemon
holding it in WAL mode is fine, one short transaction waits for its writer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gunguard.store.schema import StorageFault, describe_error, open_store, rollback

#: How long to wait for the daemon's writer (it commits in milliseconds).
TIMEOUT_S = 5.0

_INSERT = (
    "INSERT INTO calibrations (wall, key, old_value, new_value, how, record, file, config_hash)"
    " VALUES (?,?,?,?,?,?,?,?)"
)


@dataclass(frozen=True, slots=True)
class CalibrationEntry:
    """One value to record: the config key, before and after, and how it was measured."""

    key: str
    old_value: float | None
    new_value: float
    how: str
    record: dict[str, Any] = field(default_factory=dict)


def record_calibrations(
    path: Path,
    entries: Sequence[CalibrationEntry],
    *,
    wall: float,
    file: Path,
    config_hash: str,
) -> None:
    """Store ``entries`` in one transaction; :class:`StorageFault` if the store refuses."""
    with closing(open_store(path, timeout=TIMEOUT_S, durable=True)) as conn:
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                _INSERT,
                [
                    (
                        wall,
                        e.key,
                        e.old_value,
                        e.new_value,
                        e.how,
                        json.dumps(e.record, sort_keys=True),
                        str(file),
                        config_hash,
                    )
                    for e in entries
                ],
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            rollback(conn)
            raise StorageFault(
                path, f"cannot record the calibration: {describe_error(exc)}"
            ) from exc
