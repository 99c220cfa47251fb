"""Store: the SQLite ledger's writes per second and their effect on the loop's lateness.

Runs in the loop-timing worker (:mod:`bench.looptiming`) with the supervisor recording
into a :class:`controller.ledger.Ledger` in a temporary directory (never the real
``/var/lib/gunguard``), in two modes:

* ``normal``: the ledger as the daemon runs it (its writer thread commits every
  ``FLUSH_INTERVAL_S`` while something changed, telemetry at ``TELEMETRY_HZ``);
* ``stress``: in addition a thread commits back to back (``Ledger.flush()``, each a
  ``synchronous=FULL`` WAL commit with its fsync), the most the store can be made to
  write, to see what that does to the loop.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import DIST_COLUMNS, Section, Table, dist_row, pending, scaled, summarize

MODES = ("normal", "stress")


def available() -> bool:
    return importlib.util.find_spec("controller.ledger") is not None


class LedgerHarness:
    """A ledger in a temporary directory, wired like ``gunguard run`` wires it."""

    def __init__(self, cfg: Any, mode: str) -> None:
        from controller.clock import RealClock
        from controller.ledger import open_ledger

        if mode not in MODES:
            raise ValueError(f"ledger mode {mode!r}: one of {MODES}")
        self.mode = mode
        self._dir = tempfile.mkdtemp(prefix="gunguard-bench-ledger-")
        self.path = Path(self._dir) / "history.db"
        self.ledger = open_ledger(cfg, RealClock(), path=self.path)
        if self.ledger.fault is not None:
            raise RuntimeError(f"bench ledger unusable: {self.ledger.fault}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._commit_ns: list[int] = []
        self._started = 0.0
        self._commits0 = 0
        self._rows0 = 0

    def start(self, rig: Any) -> None:
        from controller import reasons as why
        from controller.ledger import supervisor_probe

        sup = rig.supervisor
        self.ledger.set_fault_handler(lambda detail: sup.trip(why.STORAGE_FAULT, detail))
        self.ledger.set_probe(supervisor_probe(sup))
        self._started = time.perf_counter()
        self._commits0 = self.ledger.commits
        self._rows0 = self.ledger.rows_written
        if self.mode == "stress":
            self._thread = threading.Thread(target=self._hammer, name="bench-ledger-stress")
            self._thread.start()

    def _hammer(self) -> None:
        flush = self.ledger.flush
        clock = time.perf_counter_ns
        self._stop.wait(0.2)  # let the loop start first
        while not self._stop.is_set():
            t0 = clock()
            flush()
            self._commit_ns.append(clock() - t0)

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._started
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
        commits = self.ledger.commits - self._commits0
        rows = self.ledger.rows_written - self._rows0
        fault = self.ledger.fault
        self.ledger.close()
        size = self.path.stat().st_size if self.path.exists() else 0
        shutil.rmtree(self._dir, ignore_errors=True)
        out: dict[str, Any] = {
            "mode": self.mode,
            "commits": commits,
            "rows_written": rows,
            "commits_per_s": commits / wall,
            "rows_per_s": rows / wall,
            "db_bytes": size,
            "fault": None if fault is None else str(fault),
        }
        if self._commit_ns:
            out["commit_ms"] = summarize(x / 1e6 for x in self._commit_ns)
        return {"ledger": out}


def ledger_section(seconds: float) -> Section:
    title = "Store: ledger writes and the loop"
    if not available():
        return pending(
            "store",
            title,
            "ledger_commits_per_s",
            "ledger commits per second",
            "1/s",
            None,
            "the SQLite ledger (controller/ledger.py)",
        )
    from bench.looptiming import REGION, longest_gap, run_worker

    section = Section("store", title)
    started = time.perf_counter()
    baseline = run_worker(seconds, None)
    runs = {mode: run_worker(seconds, None, "--ledger", mode) for mode in MODES}
    rows = [dist_row("memory book (no store)", baseline["lateness_ms"], 1000.0, 0)]
    rows[0] += [
        round(longest_gap(baseline), 2),
        "",
        "",
        ", ".join(baseline["trips"]) or "none",
    ]
    for mode, result in runs.items():
        led = result["ledger"]
        rows.append(
            [
                *dist_row(f"ledger, {mode}", result["lateness_ms"], 1000.0, 0),
                round(longest_gap(result), 2),
                round(led["commits_per_s"], 1),
                round(led["rows_per_s"], 1),
                ", ".join(result["trips"]) or "none",
            ]
        )
        section.data[mode] = {
            **{k: v for k, v in result.items() if k != "lateness_ms"},
            "lateness_ms": scaled(result["lateness_ms"], 1.0, 6),
        }
    section.data["memory_book"] = {"lateness_ms": scaled(baseline["lateness_ms"], 1.0, 6)}
    normal = runs["normal"]["ledger"]
    stress = runs["stress"]["ledger"]
    section.metric(
        "ledger_commits_per_s",
        "ledger commits per second as the daemon runs it (percussing)",
        normal["commits_per_s"],
        "1/s",
        note=f"{normal['rows_per_s']:.1f} rows/s",
    )
    section.metric(
        "ledger_commits_per_s_max",
        "ledger commits per second, back to back (synchronous=FULL, fsync each)",
        stress["commits_per_s"],
        "1/s",
        note="commit p50 {:.2f} ms, p99 {:.2f} ms".format(
            stress["commit_ms"]["p50"], stress["commit_ms"]["p99"]
        )
        if "commit_ms" in stress
        else "",
    )
    section.metric(
        "lateness_p999_ms_ledger_normal",
        "tick lateness p99.9 with the ledger (normal), idle, SCHED_OTHER",
        runs["normal"]["lateness_ms"]["p99.9"],
        "ms",
        note=f"memory book: {baseline['lateness_ms']['p99.9']:.3f} ms in the same series",
    )
    section.metric(
        "lateness_p999_ms_ledger_stress",
        "tick lateness p99.9 with the ledger committing back to back",
        runs["stress"]["lateness_ms"]["p99.9"],
        "ms",
    )
    section.tables.append(
        Table(
            "Tick lateness with the store (µs), idle, SCHED_OTHER",
            [*DIST_COLUMNS, "longest gap ms", "commits/s", "rows/s", "trips"],
            rows,
        )
    )
    if "commit_ms" in stress:
        section.tables.append(
            Table(
                "Commit time, back to back (µs)",
                DIST_COLUMNS,
                [dist_row("Ledger.flush()", stress["commit_ms"], 1000.0, 0)],
            )
        )
    section.notes += [
        f"{seconds:g} s per run, the loop-timing worker (region {REGION} armed, gun "
        "percussing, 1000 Hz) recording into a Ledger in a temporary directory on this "
        "machine's disk; the memory-book run is the same worker with the in-memory book.",
        "The loop thread only adds contact seconds in memory (Ledger.add_contact); commits "
        "happen on the ledger's writer thread (and, in 'stress', on one more thread). "
        "sqlite3 releases the GIL while SQLite works, so their cost to the loop is the "
        "Python around each commit and the fsync's disk traffic.",
        "fsync cost is the disk's: this machine's virtual disk acknowledges a flush in "
        "about 0.1 ms; a Raspberry Pi's SD card takes milliseconds to tens of "
        "milliseconds, so measure the back-to-back rate on the target.",
    ]
    section.seconds = time.perf_counter() - started
    return section
