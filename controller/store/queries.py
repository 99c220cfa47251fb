"""Read-only queries over the treatment store, returning typed records.

The schema (:mod:`gunguard.store.schema`) is private to the store modules: the
commands that show the history (:mod:`gunguard.operator.history`, :mod:`gunguard.operator.report`)
and the ledger's own loading at start ask here, so a schema change touches one place.
The treatment plans' records have their own module (:mod:`gunguard.store.plans`), read
here with :meth:`StoreReader.plan_history`.
Lists come in storage order (by id) unless a method says otherwise.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gunguard.core.dose import Counted, bucket_of, expand
from gunguard.store.plans import PlanHistory, read_plan_history
from gunguard.store.schema import StorageFault, check_store, connect, describe_error

#: How long a reader waits for a lock held by the writer before it is a fault.
READ_TIMEOUT_S = 2.0

#: The newest wall time anything in the store was stamped with.
_NEWEST = (
    "SELECT MAX(x) FROM ("
    " SELECT MAX(newest_wall) AS x FROM sessions UNION ALL"
    " SELECT MAX(opened_wall) FROM sessions UNION ALL"
    " SELECT MAX(end_wall) FROM treatments UNION ALL"
    " SELECT MAX(wall) FROM trips UNION ALL"
    " SELECT MAX(cleared_wall) FROM trips UNION ALL"
    " SELECT MAX(wall) FROM actions)"
)
_SESSION = (
    "SELECT id, opened_wall, newest_wall, closed_wall, config_hash, gap_s, rest_s, boot_id,"
    " flushed_wall, flushed_mono FROM sessions"
)
#: Treatments with their rates in one statement, so one snapshot even while the daemon writes.
_TREATMENT = (
    "SELECT t.id, t.region, t.start_wall, t.end_wall, t.dose, t.start_session, t.end_session,"
    " t.allowance, r.up_to_ppm, r.contact_s, r.percussion_s"
    " FROM treatments t LEFT JOIN treatment_rates r ON r.treatment_id = t.id"
)
_TRIP = "SELECT id, wall, reason, detail, region, config_hash, cleared_wall FROM trips"
#: Refusals as the ledger records them: an action of kind 'refused', detail "reason: text".
_REFUSAL = "SELECT id, wall, session, region, detail FROM actions WHERE kind = 'refused'"
_ACTION = "SELECT id, wall, session, kind, region, detail FROM actions"
_CALIBRATION = (
    "SELECT id, wall, key, old_value, new_value, how, record, file, config_hash FROM calibrations"
)
#: The schema that added the calibrations table.
CALIBRATIONS_SINCE = 3
_TELEMETRY = "SELECT wall, rate_ppm, force_n, power, region, dose FROM telemetry"
#: Rows between two times while ``region``, or no region, was armed.
_WINDOW = "wall BETWEEN :start AND :end AND (region = :region OR region IS NULL)"


@dataclass(frozen=True, slots=True)
class RateSeconds:
    """What a treatment received in one 25-ppm rate bucket (gunguard.core.dose)."""

    up_to_ppm: float  # the bucket's top rate: what it is judged at
    contact_s: float  # percussion with contact confirmed: the dose
    percussion_s: float  # all percussion while armed: the backstop


@dataclass(frozen=True, slots=True)
class Treatment:
    """A stored treatment; ``rates`` by rising rate."""

    id: int
    region: str
    start_wall: float  # first counted percussion
    end_wall: float  # last counted percussion
    dose: float | None  # the highest dose it reached (None: the config did not know it)
    start_session: int
    end_session: int  # the session that last extended it
    allowance: tuple[tuple[float, float], ...] | None  # tightest (top ppm, s) runs seen
    rates: tuple[RateSeconds, ...]

    @property
    def contact_seconds(self) -> float:
        return sum(r.contact_s for r in self.rates)

    @property
    def percussion_seconds(self) -> float:
        return sum(r.percussion_s for r in self.rates)

    def counted(self) -> Counted:
        """In the core's terms, to continue it or judge it under any config."""
        return Counted(
            {bucket_of(r.up_to_ppm): r.contact_s for r in self.rates if r.contact_s},
            {bucket_of(r.up_to_ppm): r.percussion_s for r in self.rates},
            None if self.allowance is None else expand(self.allowance),
            self.dose or 0.0,
        )


@dataclass(frozen=True, slots=True)
class Trip:
    id: int
    wall: float
    reason: str
    detail: str
    region: str | None  # the region armed when it tripped
    config_hash: str
    cleared_wall: float | None  # None: still latched

    @property
    def latched(self) -> bool:
        return self.cleared_wall is None


@dataclass(frozen=True, slots=True)
class Action:
    """An operator action or clock event (gunguard.store.ledger: select, deselect, refused,
    reset, trip_restored, clock_step)."""

    id: int
    wall: float
    session: int
    kind: str
    region: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A selection the supervisor refused (an ``actions`` row of kind ``refused``)."""

    id: int
    wall: float
    session: int
    region: str | None  # the region asked for
    reason: str  # the refusal code (gunguard.core.reasons.RefusalReason)
    detail: str

    @classmethod
    def from_row(
        cls, rid: int, wall: float, session: int, region: str | None, text: str | None
    ) -> Refusal:
        """The ledger stores ``"reason: detail"`` in one column; split it again."""
        reason, _, detail = (text or "").partition(": ")
        return cls(rid, wall, session, region, reason, detail)


@dataclass(frozen=True, slots=True)
class Calibration:
    """One calibration value ``gunguard calibrate`` wrote (schema 3)."""

    id: int
    wall: float
    key: str  # the config key, e.g. hardware.force_sensor.zero
    old_value: float | None  # None: not set before (the built-in default)
    new_value: float
    how: str
    record: dict[str, Any]  # the step's record: readings, weight, reference rate
    file: str  # the calibration file written
    config_hash: str  # the config's hash before the calibration


@dataclass(frozen=True, slots=True)
class Session:
    """One daemon start, with the rules it ran with."""

    id: int
    opened_wall: float
    newest_wall: float | None
    closed_wall: float | None  # None: killed, or lost power
    config_hash: str
    gap_s: float
    rest_s: float
    boot_id: str | None = None  # the kernel's boot id: same boot, same monotonic clock
    flushed_wall: float | None = None  # wall and monotonic time of its last commit
    flushed_mono: float | None = None

    @property
    def clock_offset(self) -> float | None:
        """Wall minus monotonic time as this session last believed it."""
        if self.flushed_wall is None or self.flushed_mono is None:
            return None
        return self.flushed_wall - self.flushed_mono

    def same_boot(self, boot_id: str | None) -> bool:
        return boot_id is not None and self.boot_id == boot_id


@dataclass(slots=True)
class Telemetry:
    """Telemetry samples as columns (the shape a plot wants), in time order."""

    wall: list[float] = field(default_factory=list)
    rate_ppm: list[float] = field(default_factory=list)
    force_n: list[float] = field(default_factory=list)
    power: list[bool] = field(default_factory=list)
    region: list[str | None] = field(default_factory=list)
    dose: list[float | None] = field(default_factory=list)


class StoreReader:
    """Typed queries on an open store connection; never writes.

    SQLite errors propagate as :class:`sqlite3.Error`; :func:`open_reader` turns them
    into :class:`StorageFault`.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def schema_version(self) -> int:
        """0: an empty store with no tables yet (nothing else here may be asked of it)."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def newest_record(self) -> float | None:
        """The newest wall time stored: the true time is at least this."""
        newest = self._conn.execute(_NEWEST).fetchone()[0]
        return None if newest is None else float(newest)

    # -- sessions ---------------------------------------------------------------------------
    def session(self, sid: int) -> Session | None:
        row = self._conn.execute(_SESSION + " WHERE id = ?", (sid,)).fetchone()
        return None if row is None else Session(*row)

    def latest_session(self) -> Session | None:
        row = self._conn.execute(_SESSION + " ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else Session(*row)

    def boot_sessions(self, boot_id: str) -> list[Session]:
        """Every session of one boot (one monotonic clock), oldest first."""
        rows = self._conn.execute(_SESSION + " WHERE boot_id = ? ORDER BY id", (boot_id,))
        return [Session(*row) for row in rows]

    # -- treatments -------------------------------------------------------------------------
    def treatments(self) -> list[Treatment]:
        return self._treatments(_TREATMENT + " ORDER BY t.id, r.up_to_ppm", {})

    def treatment(self, tid: int) -> Treatment | None:
        sql = _TREATMENT + " WHERE t.id = :id ORDER BY r.up_to_ppm"
        found = self._treatments(sql, {"id": tid})
        return found[0] if found else None

    def last_treatment(self) -> Treatment | None:
        """The newest treatment of any region."""
        sql = _TREATMENT + " WHERE t.id = (SELECT MAX(id) FROM treatments) ORDER BY r.up_to_ppm"
        found = self._treatments(sql, {})
        return found[0] if found else None

    def latest_treatments(self) -> list[Treatment]:
        """Each region's newest treatment: the ones a new selection may continue."""
        newest = "SELECT MAX(id) FROM treatments GROUP BY region"
        sql = f"{_TREATMENT} WHERE t.id IN ({newest}) ORDER BY t.id, r.up_to_ppm"
        return self._treatments(sql, {})

    def session_treatments(self, sid: int) -> list[Treatment]:
        """The treatments a session started or extended."""
        scope = "t.start_session = :sid OR t.end_session = :sid"
        sql = f"{_TREATMENT} WHERE {scope} ORDER BY t.id, r.up_to_ppm"
        return self._treatments(sql, {"sid": sid})

    def _treatments(self, sql: str, params: Mapping[str, Any]) -> list[Treatment]:
        """Rows of :data:`_TREATMENT` (one per rate, rising) grouped by treatment."""
        found: dict[int, tuple[tuple[Any, ...], list[RateSeconds]]] = {}
        for *treatment, allowance, up_to, contact, percussion in self._conn.execute(sql, params):
            key = treatment[0]
            if key not in found:
                runs = None if allowance is None else tuple(map(tuple, json.loads(allowance)))
                found[key] = ((*treatment, runs), [])
            if up_to is not None:  # (a treatment without rates: one row of NULLs)
                found[key][1].append(RateSeconds(float(up_to), float(contact), float(percussion)))
        return [Treatment(*row, rates=tuple(rates)) for row, rates in found.values()]

    # -- trips ----------------------------------------------------------------------------------
    def trips(self) -> list[Trip]:
        return [Trip(*row) for row in self._conn.execute(_TRIP + " ORDER BY id")]

    def latched_trip(self) -> Trip | None:
        """The oldest trip no reset has cleared: a restart latches it again."""
        row = self._conn.execute(
            _TRIP + " WHERE cleared_wall IS NULL ORDER BY id LIMIT 1"
        ).fetchone()
        return None if row is None else Trip(*row)

    def session_trips(self, sid: int) -> list[Trip]:
        """A session's trips, in time order."""
        return self._trips("session = :sid", {"sid": sid})

    def trips_between(self, start: float, end: float) -> list[Trip]:
        """Trips of every region from ``start`` to ``end``, in time order."""
        return self._trips("wall BETWEEN :start AND :end", {"start": start, "end": end})

    def window_trips(self, region: str, start: float, end: float) -> list[Trip]:
        """Trips from ``start`` to ``end`` while ``region`` or nothing was armed, in time order."""
        return self._trips(_WINDOW, {"region": region, "start": start, "end": end})

    def _trips(self, where: str, params: Mapping[str, Any]) -> list[Trip]:
        sql = f"{_TRIP} WHERE {where} ORDER BY wall, id"
        return [Trip(*row) for row in self._conn.execute(sql, params)]

    # -- refusals ---------------------------------------------------------------------------------
    def refusals(self) -> list[Refusal]:
        """Every refused selection, in time order."""
        return self._refusals("1", {})

    def session_refusals(self, sid: int) -> list[Refusal]:
        """A session's refused selections, in time order."""
        return self._refusals("session = :sid", {"sid": sid})

    def window_refusals(self, region: str, start: float, end: float) -> list[Refusal]:
        """Refusals of ``region`` (or of no region) from ``start`` to ``end``, in time order."""
        return self._refusals(_WINDOW, {"region": region, "start": start, "end": end})

    def _refusals(self, where: str, params: Mapping[str, Any]) -> list[Refusal]:
        sql = f"{_REFUSAL} AND ({where}) ORDER BY wall, id"
        return [Refusal.from_row(*row) for row in self._conn.execute(sql, params)]

    # -- actions ----------------------------------------------------------------------------------
    def actions_between(
        self, start: float, end: float, kinds: Sequence[str] | None = None
    ) -> list[Action]:
        """Actions of every region from ``start`` to ``end`` (only ``kinds``), in time order."""
        where = "wall BETWEEN :start AND :end"
        params: dict[str, Any] = {"start": start, "end": end}
        if kinds is not None:
            names = {f"k{i}": kind for i, kind in enumerate(kinds)}
            where += f" AND kind IN ({', '.join(':' + k for k in names) or 'NULL'})"
            params |= names
        sql = f"{_ACTION} WHERE {where} ORDER BY wall, id"
        return [Action(*row) for row in self._conn.execute(sql, params)]

    # -- calibrations -------------------------------------------------------------------------
    def calibrations(self) -> list[Calibration]:
        """Every recorded calibration, oldest first (none in a store before schema 3)."""
        if self.schema_version() < CALIBRATIONS_SINCE:
            return []  # (readers never migrate: an older store has no such table yet)
        rows = self._conn.execute(_CALIBRATION + " ORDER BY id")
        return [
            Calibration(i, wall, key, old, new, how, json.loads(record), file, h)
            for i, wall, key, old, new, how, record, file, h in rows
        ]

    # -- treatment plans (schema 4: gunguard.store.plans) --------------------------------------
    def plan_history(self) -> PlanHistory:
        """Every plan adopted, guided session (with its steps), pain score and progression
        decision, oldest first; empty for a store before schema 4. The records are
        documented in :mod:`gunguard.store.plans`."""
        return read_plan_history(self._conn)

    # -- telemetry ------------------------------------------------------------------------------
    def session_telemetry(self, sid: int) -> Telemetry:
        return self._telemetry("session = :sid", {"sid": sid})

    def telemetry_between(self, start: float, end: float) -> Telemetry:
        """Samples of every region from ``start`` to ``end``."""
        return self._telemetry("wall BETWEEN :start AND :end", {"start": start, "end": end})

    def window_telemetry(self, region: str, start: float, end: float) -> Telemetry:
        """Samples from ``start`` to ``end`` while ``region`` or nothing was armed."""
        return self._telemetry(_WINDOW, {"region": region, "start": start, "end": end})

    def _telemetry(self, where: str, params: Mapping[str, Any]) -> Telemetry:
        out = Telemetry()
        for wall, rate, force, power, region, dose in self._conn.execute(
            f"{_TELEMETRY} WHERE {where} ORDER BY wall, rowid", params
        ):
            out.wall.append(wall)
            out.rate_ppm.append(rate)
            out.force_n.append(force)
            out.power.append(bool(power))
            out.region.append(region)
            out.dose.append(dose)
        return out


@contextmanager
def open_reader(path: Path) -> Iterator[StoreReader]:
    """The store at ``path``, read-only and checked (``quick_check``).

    Never creates, migrates or repairs it, and works while the daemon writes. Any
    SQLite error, here or in the queries made inside the ``with``, is a
    :class:`StorageFault`.
    """
    try:
        with closing(connect(path, mode="ro", timeout=READ_TIMEOUT_S)) as conn:
            check_store(conn, path, full=False)
            yield StoreReader(conn)
    except sqlite3.Error as exc:
        raise StorageFault(path, describe_error(exc)) from exc
