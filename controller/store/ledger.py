"""The durable treatment book: what each region has received, in SQLite, off the hot path.

:class:`Ledger` implements :class:`gunguard.core.book.TreatmentBook`. Every decision
(:meth:`Ledger.admit`, :meth:`Ledger.current`) is answered from memory, loaded
when the store is opened; the store is written behind, by a writer thread:

* :meth:`Ledger.add` (the control loop, 1 kHz) only adds to an in-memory
  treatment under a lock held for about a microsecond.
* The writer commits everything pending in one transaction at least every
  :data:`FLUSH_INTERVAL_S` while something changed, and at once after a trip, reset,
  selection or refusal. Treatments are written as absolute totals with ``max()``
  upserts, so a retried or repeated write can never make a dose go down.
* ``journal_mode=WAL`` with ``synchronous=FULL``: each commit appends to the WAL and
  fsyncs it, so a commit survives a power cut, not only a killed process. (With
  ``NORMAL`` the WAL is synced only at checkpoints: a power cut could lose every commit
  since the last checkpoint, far more than a second.) A kill or power cut therefore
  loses at most the contact counted since the last commit: the flush interval plus
  the commit's own time, well under 1 s.

A store that cannot be trusted is never replaced, truncated or migrated
(:func:`gunguard.store.schema.open_store` judges it): :attr:`Ledger.fault` is set
and every region is refused ``storage_fault``. A write that fails while running (a
full disk, a lock held too long) calls the fault handler (the daemon trips
``storage_fault``) and keeps everything pending in memory to retry.

Clock steps are seen against the monotonic clock (:meth:`Ledger._observe`).
Treatment times are stamped on a *session clock*, monotonic time plus the highest
wall-minus-monotonic offset seen in this session: never earlier than any clock the
session has believed, so a backward step cannot make a treatment look older. A
forward step beyond that (NTP after a boot with a stale clock) moves everything this
session stamped with the lower clock, so time the Pi spent with a wrong clock never
counts as rest. A wall clock behind the newest record is untrusted
(:mod:`gunguard.store.treatments`).

In virtual time (``simulate``, tests) ``background=False`` runs no thread: the ledger
samples and commits inline, on virtual-time deadlines, so results are deterministic.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gunguard.config.loader import config_hash
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core import ceilings, events
from gunguard.core.admission import Refusal
from gunguard.core.clock import Clock
from gunguard.core.dose import Allowance, Counted, bucket_top, compress, dose_of, tightest
from gunguard.core.events import Event
from gunguard.core.limits import Limits
from gunguard.core.reasons import RefusalReason, TripReason
from gunguard.store import treatments as rules
from gunguard.store.queries import Session, StoreReader

# ``name as name``: the store's format, re-exported for callers that know it from here.
from gunguard.store.schema import APPLICATION_ID as APPLICATION_ID
from gunguard.store.schema import MIGRATIONS as MIGRATIONS
from gunguard.store.schema import SCHEMA_VERSION as SCHEMA_VERSION
from gunguard.store.schema import StorageFault, describe_error, open_store, rollback
from gunguard.store.schema import migrate as migrate

log = logging.getLogger(__name__)

#: Commit at least this often while something changed (a kill loses at most this much).
FLUSH_INTERVAL_S = 0.5
#: Telemetry while the gun is active (power, rate or contact); idle: one per minute.
TELEMETRY_HZ = 10.0
IDLE_SAMPLE_S = 60.0
#: Telemetry rows kept (oldest pruned first): about 14 h of active use at 10 Hz.
TELEMETRY_MAX_ROWS = 500_000
PRUNE_EVERY_S = 600.0
#: A write waits this long for a lock held by another process, then it is a fault.
BUSY_TIMEOUT_S = 0.5
#: Opening may wait longer: nothing is armed yet.
OPEN_TIMEOUT_S = 2.0
#: After a failed write, retry this often (everything pending stays in memory).
RETRY_S = 1.0
#: A change of (wall - monotonic) larger than this is a clock step, not drift.
STEP_TOLERANCE_S = 1.0
DEFAULT_STATE_DIR = "/var/lib/gunguard"
DB_NAME = "history.db"

#: Telemetry probe: (rate_ppm, force_n, power_on, region).
Probe = Callable[[], tuple[float, float, bool, str | None]]
FaultHandler = Callable[[str], object]

# Action kinds (the ``actions`` table).
SELECT, DESELECT, REFUSED, RESET = "select", "deselect", "refused", "reset"
CLOCK_STEP, TRIP_RESTORED = "clock_step", "trip_restored"

_UPSERT_TREATMENT = (
    "INSERT INTO treatments"
    " (id, region, start_wall, end_wall, dose, start_session, end_session, allowance)"
    " VALUES (:id, :region, :start, :end, :dose, :sid, :sid, :allowance)"
    " ON CONFLICT(id) DO UPDATE SET start_wall = excluded.start_wall,"
    " end_wall = max(end_wall, excluded.end_wall), end_session = excluded.end_session,"
    " dose = max(COALESCE(dose, 0), COALESCE(excluded.dose, 0)),"
    " allowance = excluded.allowance"
)
#: Absolute totals with max(): a retried or repeated write never makes a dose go down.
_UPSERT_RATE = (
    "INSERT INTO treatment_rates (treatment_id, up_to_ppm, contact_s, percussion_s)"
    " VALUES (?,?,?,?) ON CONFLICT(treatment_id, up_to_ppm) DO UPDATE SET"
    " contact_s = max(contact_s, excluded.contact_s),"
    " percussion_s = max(percussion_s, excluded.percussion_s)"
)
_INSERT_TRIP = (
    "INSERT INTO trips (wall, clock_offset, session, reason, detail, region, config_hash)"
    " VALUES (?,?,?,?,?,?,?)"
)
_CLEAR_TRIPS = "UPDATE trips SET cleared_wall = ? WHERE cleared_wall IS NULL"
_INSERT_ACTION = (
    "INSERT INTO actions (wall, clock_offset, session, kind, region, detail) VALUES (?,?,?,?,?,?)"
)
_INSERT_TELEMETRY = (
    "INSERT INTO telemetry (wall, clock_offset, session, rate_ppm, force_n, power, region, dose)"
    " VALUES (?,?,?,?,?,?,?,?)"
)
#: A forward clock step: rows this session stamped with a lower clock move with it.
#: (``{sessions}``: this session and the earlier ones of the same boot, which share its
#: monotonic clock.)
_SHIFT = (
    "UPDATE {table} SET wall = wall + (:to - clock_offset), clock_offset = :to"
    " WHERE session IN ({sessions}) AND clock_offset < :below"
)
_SHIFT_SESSION = (
    "UPDATE sessions SET opened_wall = opened_wall + :shift,"
    " newest_wall = newest_wall + :shift, flushed_wall = flushed_wall + :shift"
    " WHERE id IN ({sessions}) AND flushed_wall - flushed_mono < :below"
)
_FLUSHED = "UPDATE sessions SET flushed_wall = ?, flushed_mono = ?, newest_wall = ? WHERE id = ?"


def default_storage_path(cfg: GunguardConfig, env: dict[str, str] | None = None) -> Path:
    """``storage.path``, else ``$STATE_DIRECTORY/history.db`` (systemd), else /var/lib."""
    env = dict(os.environ) if env is None else env
    if cfg.storage.path:
        return Path(cfg.storage.path).expanduser()
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state or DEFAULT_STATE_DIR) / DB_NAME


class _Treatment:
    """One treatment in memory; the store holds a copy at most one flush behind.

    ``start_here``/``end_here``: stamped on this boot's monotonic clock (a forward clock
    step moves them); False for times an earlier boot stamped.
    """

    __slots__ = ("counted", "end", "end_here", "id", "region", "start", "start_here")

    def __init__(
        self,
        tid: int,
        region: str,
        start: float,
        end: float,
        counted: Counted,
        *,
        start_here: bool,
        end_here: bool,
    ) -> None:
        self.id = tid
        self.region = region
        self.start = start
        self.end = end
        self.counted = counted
        self.start_here = start_here
        self.end_here = end_here

    def state(self) -> rules.RegionState:
        return rules.RegionState(self.start, self.end)


@dataclass(frozen=True, slots=True)
class _Row:
    """A treatment as the writer stores it (copied under the lock)."""

    id: int
    region: str
    start: float
    end: float
    contact: dict[int, float]
    percussion: dict[int, float]
    allowance: Allowance | None
    dose_floor: float


Op = tuple[str, tuple[Any, ...] | dict[str, Any]]


class Ledger:
    """The SQLite treatment book. Never raises for a bad store: see :attr:`fault`."""

    def __init__(
        self,
        path: Path | str,
        limits: Limits,
        clock: Clock,
        *,
        config_tag: str = "",
        background: bool = True,
        durable: bool = True,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        telemetry_hz: float = TELEMETRY_HZ,
        telemetry_max_rows: int = TELEMETRY_MAX_ROWS,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        on_fault: FaultHandler | None = None,
        probe: Probe | None = None,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._background = background
        self._durable = durable
        self.flush_interval_s = flush_interval_s
        self._sample_s = 1.0 / telemetry_hz
        self._telemetry_max_rows = telemetry_max_rows
        self._busy_timeout_s = busy_timeout_s
        self._on_fault = on_fault
        self._probe = probe
        self._limits_source: Callable[[], tuple[Limits, str]] | None = None
        self.configure(limits, config_tag)

        self._lock = threading.Lock()  # in-memory state; held for microseconds
        self._db_lock = threading.Lock()  # the connection; held for a commit
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._pumping = False
        #: Why the store cannot be used (None: healthy). Set at open or by a failed write.
        self.fault: StorageFault | None = None
        self._fault_reported = False

        self._session = 0
        self._latest: dict[str, _Treatment] = {}  # each region's latest treatment
        self._active: dict[str, _Treatment | None] = {}  # selected: continue it / None: new
        self._dirty: dict[int, _Treatment] = {}
        self._ops: list[Op] = []
        self._urgent = False
        self._next_id = 1
        self._selected: str | None = None
        self._latched: tuple[str, str, float] | None = None
        self._restoring: str | None = None
        self._newest_before = float("-inf")  # newest stamp of earlier sessions
        self._newest_here = float("-inf")  # newest stamp of this session
        self._offset = clock.wall() - clock.monotonic()  # wall - monotonic, last seen
        self._high = self._offset  # the session clock's offset: the highest seen
        self._open_offset = self._offset
        self._judged: dict[str, Allowance] = {}  # the allowance each region is judged by
        self._boot_sessions: list[int] = []  # this session and the earlier ones of its boot

        now = clock.monotonic()
        self._next_flush = now + flush_interval_s
        self._next_sample = now
        self._sample_origin = now  # 10 Hz samples on a grid from here (not from each call)
        self._next_idle_sample = now
        self._last_active: bool | None = None
        self._next_prune = now + PRUNE_EVERY_S
        self._retry_at = now
        #: Counters for reports and tests.
        self.commits = 0
        self.rows_written = 0

        try:
            self._open(open_timeout_s)
        except StorageFault as fault:
            self.fault = fault
            log.error(
                "treatment history unavailable: %s; every region is refused (%s) and the "
                "file is left untouched",
                fault,
                TripReason.STORAGE_FAULT,
            )
            return
        if background:
            self._thread = threading.Thread(target=self._run, name="gunguard-ledger", daemon=True)
            self._thread.start()

    # -- configuration and wiring ---------------------------------------------------------
    def configure(self, limits: Limits, tag: str = "") -> None:
        """Adopt (reloaded) limits: gap, rest and the band caps of the stored dose.

        ``tag`` names the config they came from (its hash), stored with every trip.
        """
        self._limits = limits
        self._gap_s = limits.treatment_gap_s
        # The built-in minimum holds even for a config that skipped validation.
        self._rest_s = max(limits.rest_hours, ceilings.REST_HOURS.value) * 3600.0
        self._contact_n = limits.contact_force_n
        self._config_hash = tag

    def set_fault_handler(self, handler: FaultHandler) -> None:
        """Called (from the writer thread) when a write fails; at once if one already has."""
        self._on_fault = handler
        fault = self.fault
        if fault is not None and self._conn is not None and not self._fault_reported:
            self._report_fault(fault)

    def set_probe(self, probe: Probe) -> None:
        self._probe = probe

    def follow_limits(self, source: Callable[[], tuple[Limits, str]]) -> None:
        """Take the limits and their config tag from ``source`` (the supervisor's, which
        a reload replaces)."""
        self._limits_source = source

    def _follow(self) -> None:
        source = self._limits_source
        if source is not None:
            limits, tag = source()
            if limits is not self._limits:
                self.configure(limits, tag)

    @property
    def session(self) -> int:
        return self._session

    @property
    def newest_record(self) -> float | None:
        """The newest wall time stored (or about to be): the true time is at least this."""
        newest = max(self._newest_before, self._newest_here)
        return None if newest == float("-inf") else newest

    # -- opening ----------------------------------------------------------------------------
    def _open(self, timeout: float) -> None:
        conn = open_store(self.path, timeout=timeout, durable=self._durable)
        try:
            self._load(conn)
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        except sqlite3.Error as exc:
            rollback(conn)
            conn.close()
            raise StorageFault(self.path, describe_error(exc)) from exc
        self._conn = conn

    def _load(self, conn: sqlite3.Connection) -> None:
        """Read what decisions need into memory; register this session."""
        store = StoreReader(conn)
        newest = store.newest_record()
        self._newest_before = float("-inf") if newest is None else newest
        boot = self._clock.boot_id()
        earlier = store.boot_sessions(boot) if boot is not None else []
        self._boot_sessions = [s.id for s in earlier]
        here = set(self._boot_sessions)
        for t in store.latest_treatments():
            self._latest[t.region] = _Treatment(
                t.id,
                t.region,
                t.start_wall,
                t.end_wall,
                t.counted(),
                start_here=t.start_session in here,
                end_here=t.end_session in here,
            )
        # The newest treatment overall is the newest of its region.
        self._next_id = max((t.id for t in self._latest.values()), default=0) + 1
        trip = store.latched_trip()
        self._latched = None if trip is None else (trip.reason, trip.detail, trip.wall)
        mono = self._clock.monotonic()
        wall = self._clock.wall()
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(
            "INSERT INTO sessions (opened_wall, opened_mono, boot_id, pid, config_hash, gap_s,"
            " rest_s, flushed_wall, flushed_mono, newest_wall)"
            " VALUES (:wall, :mono, :boot, :pid, :hash, :gap, :rest, :wall, :mono, :wall)",
            {"wall": wall, "mono": mono, "boot": boot, "pid": os.getpid()}
            | {"hash": self._config_hash, "gap": self._gap_s, "rest": self._rest_s},
        )
        conn.execute("COMMIT")
        self._session = int(cur.lastrowid or 0)
        self._boot_sessions.append(self._session)
        self._newest_here = wall
        self._offset = self._high = self._open_offset = wall - mono
        self._prune(conn)
        believed = _believed_offset(earlier)
        if believed is not None and wall - mono > believed + STEP_TOLERANCE_S:
            # Same boot, a forward step while the daemon was down (NTP after a boot with a
            # stale clock): handled as if this session had seen it, so what the earlier
            # sessions of this boot stamped moves with it and never counts as rest.
            self._offset = self._high = believed
            with self._lock:
                self._observe(wall - mono)
        if newest is not None and wall < newest:
            log.warning(
                "the wall clock reads %s, earlier than the newest stored record (%s): regions "
                "still resting are refused (%s) until it is plausible again",
                rules.iso(wall),
                rules.iso(newest),
                RefusalReason.CLOCK_UNTRUSTED,
            )

    # -- the TreatmentBook protocol -------------------------------------------------------------
    def admit(self, region: str, wall: float) -> Refusal | None:
        """Refuse on a storage fault, an untrusted clock or a rest interval; from memory."""
        if not self._background:
            self.pump()  # virtual time: a failed write is retried before judging
        self._follow()
        with self._lock:
            self._observe(wall - self._clock.monotonic())
            fault = self.fault
            if fault is not None:
                return Refusal(
                    RefusalReason.STORAGE_FAULT,
                    region,
                    f"treatment history unavailable: {fault}. gunguard cannot record dose, so "
                    "it arms nothing; the file is left as it is (docs/history.md, "
                    "'Storage faults')",
                )
            decision = self._decide(region, wall)
        if decision.kind == rules.REFUSED:
            assert decision.reason is not None
            return Refusal(decision.reason, region, decision.detail, until=decision.until)
        return None

    def current(self, region: str, wall: float) -> Counted | None:
        """The treatment a selection now would continue (None: a new treatment)."""
        self._follow()
        with self._lock:
            self._observe(wall - self._clock.monotonic())
            decision = self._decide(region, wall)
            latest = self._latest.get(region)
            if decision.kind != rules.SAME or latest is None:
                return None
            c = latest.counted
            return Counted(dict(c.contact), dict(c.percussion), c.allowance, c.dose_floor)

    def add(
        self, region: str, bucket: int, contact_s: float, percussion_s: float, wall: float
    ) -> None:
        """The hot path: add to memory under a tiny lock; the writer stores it."""
        lock = self._lock
        lock.acquire()  # (not ``with``: about half the cost, and this runs every tick)
        try:
            mono = self._clock.monotonic()
            off = wall - mono
            d = off - self._offset
            if -STEP_TOLERANCE_S < d < STEP_TOLERANCE_S and off >= self._high:
                self._offset = self._high = off  # the usual case: no step, no low clock
            else:
                self._observe(off)
            stamp = mono + self._high
            t = self._active.get(region)
            if t is None:
                t = self._first_percussion(region, stamp)
            counted = t.counted
            if contact_s:
                counted.contact[bucket] = counted.contact.get(bucket, 0.0) + contact_s
            counted.percussion[bucket] = counted.percussion.get(bucket, 0.0) + percussion_s
            if stamp > t.end:
                t.end = stamp
                t.end_here = True
            if stamp > self._newest_here:
                self._newest_here = stamp
            self._dirty[t.id] = t
        finally:
            lock.release()

    def judged_by(self, region: str, allowance: Allowance) -> None:
        """Keep the tightest allowance the region's treatment in progress was judged by.

        Called by the supervisor as it arms, before the selection's event reaches this
        book: the treatment a selection now continues is judged too, not only one this
        session has already seen selected (else a restart with a tighter config, then one
        with the looser config again, would hand back the looser allowance)."""
        with self._lock:
            self._judged[region] = tightest(allowance, self._judged.get(region))
            t = self._active.get(region)
            if t is None and region not in self._active:
                latest = self._latest.get(region)
                stamp = self._clock.monotonic() + self._high
                if latest is not None and self._decide(region, stamp).kind != rules.NEW:
                    t = latest
            if t is not None:
                t.counted.allowance = tightest(allowance, t.counted.allowance)
                self._dirty[t.id] = t

    def restored_trip(self) -> tuple[str, str] | None:
        """The trip latched before the last exit: a restart does not clear it."""
        with self._lock:
            latched = self._latched
            if latched is None or self.fault is not None:
                return None
            reason, detail, wall = latched
            self._restoring = reason
        return (
            reason,
            f"{detail} [latched at {rules.iso(wall)}, before this start: a restart does not "
            "clear a trip; reset it]",
        )

    def on_event(self, event: Event) -> None:
        """Record trips, resets, selections and refusals (stored at once: they are rare)."""
        if self._closed or self._conn is None:
            return  # closed, or never opened: nothing can be stored, every region is refused
        kind = event.kind
        f = event.fields
        with self._lock:
            mono = self._clock.monotonic()
            wall = self._clock.wall()
            self._observe(wall - mono)
            self._stamp(wall)
            if kind == events.TRIP:
                self._on_trip(wall, f.get("reason", ""), f.get("detail", ""))
            elif kind == events.RESET:
                self._ops.append((_CLEAR_TRIPS, (wall,)))
                self._action(wall, RESET, None, f.get("cleared"))
                self._latched = self._restoring = None
            elif kind == events.REGION:
                region = f.get("region")
                if region is None:
                    self._action(wall, DESELECT, self._selected, None)
                else:
                    self._select(region, mono + self._high)
                    self._action(wall, SELECT, region, None)
                self._selected = region
            elif kind == events.REFUSED:
                detail = f"{f.get('reason')}: {f.get('detail', '')}"
                self._action(wall, REFUSED, f.get("region"), detail)
            self._urgent = self._urgent or kind in (
                events.TRIP,
                events.RESET,
                events.REGION,
                events.REFUSED,
            )
        if kind == events.POWER:
            self._sample(mono, force=True)
        if not self._background:
            self.pump()
        elif self._urgent:
            self._wake.set()

    # -- rules, in memory (callers hold self._lock) ------------------------------------------------
    def _decide(self, region: str, wall: float) -> rules.Decision:
        latest = self._latest.get(region)
        return rules.decide(
            region,
            None if latest is None else latest.state(),
            wall,
            newest_record=self.newest_record,
            gap_s=self._gap_s,
            rest_s=self._rest_s,
        )

    def _select(self, region: str, stamp: float) -> None:
        """The supervisor armed ``region``: continue its treatment, or start a new one.

        Judged on the session clock. When the rules would not continue it (a new
        treatment, or a race with the gap), contact starts a new treatment; when they
        refuse (the supervisor armed it anyway), counting on the old one is the safe side.
        """
        decision = self._decide(region, stamp)
        latest = self._latest.get(region)
        self._active[region] = None if decision.kind == rules.NEW else latest

    def _first_percussion(self, region: str, stamp: float) -> _Treatment:
        """Percussion in a region with no treatment going yet: open one (rarely called)."""
        if region not in self._active:  # percussion without a selection seen: judge it now
            self._select(region, stamp)
            t = self._active[region]
            if t is not None:
                return t
        counted = Counted(allowance=self._judged.get(region))
        t = _Treatment(self._next_id, region, stamp, stamp, counted, start_here=True, end_here=True)
        self._next_id += 1
        self._latest[region] = t
        self._active[region] = t
        return t

    def _on_trip(self, wall: float, reason: str, detail: str) -> None:
        if self._restoring is not None and reason == self._restoring:
            self._restoring = None  # the supervisor re-latched the stored trip
            self._action(wall, TRIP_RESTORED, self._selected, reason)
            return
        params = (wall, self._offset, self._session, reason, detail, self._selected)
        self._ops.append((_INSERT_TRIP, (*params, self._config_hash)))
        if self._latched is None:
            self._latched = (reason, detail, wall)

    def _action(self, wall: float, kind: str, region: str | None, detail: str | None) -> None:
        self._ops.append(
            (_INSERT_ACTION, (wall, self._offset, self._session, kind, region, detail))
        )

    def _stamp(self, wall: float) -> None:
        if wall > self._newest_here:
            self._newest_here = wall

    def _observe(self, off: float) -> None:
        """Track wall - monotonic: drift follows, a jump beyond the tolerance is a step."""
        d = off - self._offset
        if -STEP_TOLERANCE_S < d < STEP_TOLERANCE_S:
            self._offset = off
            if off > self._high or self._high - off < STEP_TOLERANCE_S:
                self._high = off  # no backward step outstanding: the session clock follows
            return
        self._stepped(off, d)

    def _stepped(self, off: float, d: float) -> None:
        """The wall clock stepped by ``d``: forward moves what a lower clock stamped."""
        self._offset = off
        wall = self._clock.monotonic() + off
        if d > 0.0:
            if off > self._high + STEP_TOLERANCE_S:  # past every clock this session believed
                shift = off - self._high
                for t in self._latest.values():
                    if t.start_here:
                        t.start += shift
                    if t.end_here:
                        t.end += shift
                        self._dirty[t.id] = t
            self._high = max(self._high, off)
            below = off - STEP_TOLERANCE_S
            sessions = ",".join(str(int(s)) for s in self._boot_sessions)
            shift_args = {"to": off, "below": below}
            for table in ("trips", "actions", "telemetry"):
                self._ops.append((_SHIFT.format(table=table, sessions=sessions), shift_args))
            if self._open_offset < below:
                shift = off - self._open_offset
                self._ops.append(
                    (_SHIFT_SESSION.format(sessions=sessions), {"shift": shift, "below": below})
                )
                self._open_offset = off
            self._stamp(wall)
            detail = (
                f"wall clock stepped {d:+.3f} s: what this session stamped with the earlier "
                "clock moved with it (time with a wrong clock never counts as rest)"
            )
        else:
            newest = self.newest_record
            detail = f"wall clock stepped {d:+.3f} s"
            if newest is not None and wall < newest:
                detail += (
                    f": it reads earlier than the newest record ({rules.iso(newest)}); regions "
                    f"still resting are refused ({RefusalReason.CLOCK_UNTRUSTED}) until it is "
                    "plausible"
                )
        log.warning("%s", detail)
        self._action(wall, CLOCK_STEP, None, detail)
        self._urgent = True

    # -- telemetry ----------------------------------------------------------------------------
    def _sample(self, now: float, *, force: bool = False) -> None:
        """Downsampled trace: 10 Hz while the gun is active, once a minute while idle."""
        # The next point of a fixed grid, not ``now`` plus a period: when a sample is
        # taken then depends only on time, not on when this was last called (so a
        # virtual-time skip over idle time changes no sample's time).
        k = math.floor((now - self._sample_origin) / self._sample_s + 1e-6) + 1
        self._next_sample = self._sample_origin + k * self._sample_s
        probe = self._probe
        if probe is None or self.fault is not None or self._closed:
            return
        try:
            rate, force_n, power, region = probe()
        except Exception:  # a probe must never break recording
            return
        active = power or rate > 0.0 or force_n >= self._contact_n
        if not (force or active or active != self._last_active or now >= self._next_idle_sample):
            # Idle: no row, but a clock step is still seen now (a power cut before the
            # next idle sample must not leave the step unrecorded and taken for rest).
            with self._lock:
                self._observe(self._clock.wall() - self._clock.monotonic())
            return
        self._last_active = active
        self._next_idle_sample = now + IDLE_SAMPLE_S
        with self._lock:
            wall = self._clock.wall()
            self._observe(wall - self._clock.monotonic())
            self._stamp(wall)
            t = self._latest.get(region) if region is not None else None
            dose = None if t is None else self._dose(t.region, t.counted)
            row = (wall, self._offset, self._session, round(rate, 1), round(force_n, 2))
            extra = (int(power), region, None if dose is None else round(dose, 5))
            self._ops.append((_INSERT_TELEMETRY, (*row, *extra)))

    def _dose(self, region: str, counted: Counted) -> float | None:
        """The treatment's dose, by the tightest allowance it has been judged by."""
        limits = self._limits.regions.get(region)
        if limits is None:
            return None
        allowance = tightest(limits.allowance, counted.allowance)
        return max(counted.dose_floor, dose_of(counted.contact, allowance))

    # -- writing ---------------------------------------------------------------------------------
    def pump(self) -> None:
        """Virtual-time mode (no writer thread): do what the writer would have done by now.

        The bench calls it after every tick, outside the supervisor's lock; the ledger
        also pumps itself before judging an admission and after a recorded event.
        """
        now = self._clock.monotonic()
        if (
            now < self._next_sample
            and now < self._next_flush
            and now < self._next_prune
            and not self._urgent
            and self.fault is None
            and (self._last_active is not False or now < self._next_idle_sample)
        ):
            return  # nothing due: the common case between samples (checked first)
        if self._background or self._pumping or self._closed or self._conn is None:
            return
        self._pumping = True
        try:
            idle_due = self._last_active is False and now >= self._next_idle_sample
            if now >= self._next_sample or idle_due:
                self._sample(now)
            self._maybe_commit(now)
        finally:
            self._pumping = False

    def next_due(self) -> float:
        """Virtual-time mode: the monotonic time from which :meth:`pump` has work, judged
        while the gun is idle (no power, no percussion, no contact): the idle sample, a
        commit of what is pending, a retry, a pruning. Virtual time may skip to it.

        While the last sample was not idle (or none was taken yet), the next sample is
        due at once: it must see the change.
        """
        if self._background or self._closed or self._conn is None:
            return float("inf")
        # Idle, the 10 Hz samples record nothing until the once-a-minute one is due,
        # unless the next one would see the gun active (a press with the motor off).
        sample = self._next_sample
        if self._last_active is False and not self._probe_active():
            sample = self._next_idle_sample
        due = min(sample, self._next_prune)
        if self._ops or self._dirty:
            if self.fault is not None:
                due = min(due, self._retry_at)
            elif self._urgent:
                due = min(due, self._clock.monotonic())
            else:
                due = min(due, self._next_flush)
        return due

    def _probe_active(self) -> bool:
        """What the next sample would call active (power, percussion or contact)."""
        probe = self._probe
        if probe is None:
            return False
        try:
            rate, force_n, power, _ = probe()
        except Exception:
            return True  # (unknown: sample, as the writer would)
        return power or rate > 0.0 or force_n >= self._contact_n

    def enqueue(self, sql: str, params: tuple[Any, ...] | dict[str, Any]) -> None:
        """Store a row for another store module (:mod:`gunguard.store.plans`): committed in
        the writer's next transaction, at once, in the order given, with the same
        durability, retries and fault handling as the treatments. Never blocks."""
        if self._closed or self._conn is None:
            return
        with self._lock:
            self._ops.append((sql, params))
            self._urgent = True
        if self._background:
            self._wake.set()

    def _maybe_commit(self, now: float) -> None:
        if self.fault is not None and now < self._retry_at:
            return
        if (self._ops or self._dirty) and (
            self._urgent or now >= self._next_flush or self.fault is not None
        ):
            self._commit()
        if now >= self._next_prune and self.fault is None:
            self._next_prune = now + PRUNE_EVERY_S
            with self._db_lock:
                if self._conn is not None:
                    try:
                        self._prune(self._conn)
                    except sqlite3.Error as exc:
                        log.warning("telemetry pruning failed: %s", describe_error(exc))

    def _run(self) -> None:
        """The writer thread: sample, commit on time (at once for events), retry faults."""
        while not self._stop.is_set():
            now = self._clock.monotonic()
            due = self._next_sample
            if self._ops or self._dirty:
                if self.fault is not None:
                    due = min(due, self._retry_at)
                elif self._urgent:
                    due = now
                else:
                    due = min(due, self._next_flush)
            self._wake.wait(max(0.0, min(due - now, 1.0)))
            self._wake.clear()
            if self._stop.is_set():
                break
            now = self._clock.monotonic()
            try:
                self._follow()
                if now >= self._next_sample:
                    self._sample(now)
                self._maybe_commit(now)
            except Exception:  # the writer must outlive anything unexpected
                log.exception("treatment ledger writer failed")

    def flush(self) -> bool:
        """Commit everything pending now (any thread but the control loop's). True if stored."""
        if self._conn is None:
            return False
        return self._commit()

    def _commit(self) -> bool:
        with self._db_lock:
            conn = self._conn
            if conn is None:
                return False
            with self._lock:
                mono = self._clock.monotonic()
                wall = self._clock.wall()
                self._observe(wall - mono)
                ops, self._ops = self._ops, []
                rows = [
                    _Row(
                        t.id,
                        t.region,
                        t.start,
                        t.end,
                        dict(t.counted.contact),
                        dict(t.counted.percussion),
                        t.counted.allowance,
                        t.counted.dose_floor,
                    )
                    for t in self._dirty.values()
                ]
                self._dirty.clear()
                self._urgent = False
                newest = self.newest_record
                self._next_flush = mono + self.flush_interval_s
            try:
                written = self._write(conn, ops, rows, wall, mono, newest)
            except sqlite3.Error as exc:
                rollback(conn)
                with self._lock:
                    self._ops[:0] = ops  # nothing is lost: retried, in order
                    for row in rows:
                        t = self._latest.get(row.region)
                        if t is not None and t.id == row.id:
                            self._dirty.setdefault(t.id, t)
                    self._retry_at = self._clock.monotonic() + RETRY_S
                fault = StorageFault(self.path, f"write failed: {describe_error(exc)}")
                first = self.fault is None
                self.fault = fault
            else:
                self.commits += 1
                self.rows_written += written
                if self.fault is not None:
                    log.warning("treatment history %s: writing works again", self.path)
                self.fault = None
                self._fault_reported = False
                return True
        if first:
            log.error("treatment history: %s", fault)
            self._report_fault(fault)
        return False

    def _report_fault(self, fault: StorageFault) -> None:
        handler = self._on_fault
        if handler is None:
            return
        self._fault_reported = True
        try:
            handler(
                f"cannot record dose: {fault}. gunguard keeps what it counted and retries; no "
                "region can be armed until writing works again"
            )
        except Exception:
            log.exception("storage fault handler failed")

    def _write(
        self,
        conn: sqlite3.Connection,
        ops: list[Op],
        rows: list[_Row],
        wall: float,
        mono: float,
        newest: float | None,
    ) -> int:
        """One transaction: treatments (absolute, monotonic), then the queued rows in order."""
        sid = self._session
        written = 1
        conn.execute("BEGIN IMMEDIATE")
        for r in rows:
            counted = Counted(r.contact, r.percussion, r.allowance, r.dose_floor)
            dose = self._dose(r.region, counted)
            runs = None if r.allowance is None else json.dumps(compress(r.allowance))
            conn.execute(
                _UPSERT_TREATMENT,
                {"id": r.id, "region": r.region, "start": r.start, "end": r.end}
                | {"dose": dose, "sid": sid, "allowance": runs},
            )
            conn.executemany(
                _UPSERT_RATE,
                [
                    (r.id, bucket_top(i), r.contact.get(i, 0.0), s)
                    for i, s in sorted(r.percussion.items())
                ],
            )
            written += 1 + len(r.percussion)
        i = 0
        while i < len(ops):  # runs of one statement go in one executemany
            sql = ops[i][0]
            j = i
            while j < len(ops) and ops[j][0] == sql:
                j += 1
            conn.executemany(sql, [params for _, params in ops[i:j]])
            written += j - i
            i = j
        conn.execute(_FLUSHED, (wall, mono, newest, sid))
        conn.execute("COMMIT")
        return written

    def _prune(self, conn: sqlite3.Connection) -> None:
        """Keep the newest ``telemetry_max_rows`` telemetry rows (by insertion, not clock)."""
        top = conn.execute("SELECT MAX(rowid) FROM telemetry").fetchone()[0]
        if top is not None and top > self._telemetry_max_rows:
            conn.execute(
                "DELETE FROM telemetry WHERE rowid <= ?", (top - self._telemetry_max_rows,)
            )

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Store everything pending and close. Idempotent; never raises."""
        if self._closed:
            return
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=5.0)
        if self._conn is not None:
            self._commit()
            try:
                with self._db_lock:
                    self._conn.execute(
                        "UPDATE sessions SET closed_wall = ? WHERE id = ?",
                        (self._clock.wall(), self._session),
                    )
            except sqlite3.Error as exc:
                log.error("treatment history %s: closing: %s", self.path, describe_error(exc))
        self._closed = True
        with self._db_lock:
            if self._conn is not None:
                with suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """The writer's connection, held against the writer (tests, fault injection)."""
        with self._db_lock:
            if self._conn is None:
                raise StorageFault(self.path, "not open")
            yield self._conn


def _believed_offset(sessions: list[Session]) -> float | None:
    """Wall minus monotonic as the newest of these (same-boot) sessions last believed it."""
    offsets = [s.clock_offset for s in sessions if s.clock_offset is not None]
    return max(offsets) if offsets else None


def open_ledger(
    cfg: GunguardConfig, clock: Clock, *, path: Path | None = None, **kwargs: Any
) -> Ledger:
    """The daemon's ledger at ``storage.path`` (or the state directory), making the folder.

    Never raises for storage problems: a ledger that could not open refuses every region.
    """
    path = path or default_storage_path(cfg)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as exc:
        log.error("cannot create %s: %s", path.parent, exc)
    return Ledger(path, resolve_limits(cfg), clock, config_tag=config_hash(cfg), **kwargs)
