"""Extras the loop-timing worker runs beside the rig: the SQLite ledger, the control socket.

Both are wired as ``gunguard run`` wires them; :mod:`bench.store` and
:mod:`bench.socketflood` measure what they do to the loop.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import summarize

MODES = ("normal", "stress")


class LedgerHarness:
    """A ledger in a temporary directory, wired like ``gunguard run`` wires it."""

    def __init__(self, cfg: Any, mode: str) -> None:
        from gunguard.core.clock import RealClock
        from gunguard.store.ledger import open_ledger

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
        from gunguard.assembly.build import wire_ledger

        wire_ledger(self.ledger, rig.supervisor)
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


class ServerHarness:
    """Worker side: the daemon's control server for the rig's supervisor at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._server: Any = None
        self._started = 0.0

    def start(self, rig: Any) -> None:
        from gunguard.operator.server import ControlServer

        self._server = ControlServer(rig.supervisor, self.path, rig.clock).start()
        self._started = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._started
        stats = asdict(self._server.stats)
        self._server.close()
        return {"socket": {"server": stats, "requests_per_s": stats["requests"] / wall}}
