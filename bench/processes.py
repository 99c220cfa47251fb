"""Real ``gunguard run`` processes for the benchmarks and the tests that share them.

A notify socket where systemd's would be, config and scenario files, and a daemon
process whose JSON event lines are timed as they are read. The CLI is always the one
installed next to the running interpreter (:func:`gunguard_command`), so this works
in any virtual environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

DEADLINE_S = 20.0


def gunguard_command() -> list[str]:
    """The ``gunguard`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("gunguard")
    if not script.exists():
        raise FileNotFoundError(f"no gunguard next to {sys.executable}: install the package")
    return [str(script)]


class NotifySocket:
    """A datagram socket bound where systemd's would be."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []

    def pump(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                return
            self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, text: str, after: int = 0, deadline: float = DEADLINE_S) -> int:
        """Index of the first message containing ``text`` at or after ``after``."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            self.pump()
            for i in range(after, len(self.messages)):
                if text in self.messages[i][1]:
                    return i
        raise AssertionError(f"no {text!r} after message {after}: {self.messages[after:]}")

    def wait_for_any(self, texts: tuple[str, ...], after: int = 0) -> int:
        """Index of the first message at or after ``after`` containing any of ``texts``."""
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            self.pump()
            for i in range(after, len(self.messages)):
                if any(text in self.messages[i][1] for text in texts):
                    return i
        raise AssertionError(f"none of {texts} after message {after}: {self.messages[after:]}")

    def close(self) -> None:
        self.sock.close()


def write_config(path: Path, **loop: float) -> Path:
    gap = loop.get("max_loop_gap_ms", 100)
    path.write_text(
        "hardware: {pin_factory: mock}\n"
        f"loop: {{rate_hz: 1000, max_loop_gap_ms: {gap}}}\n"
        "regions: {calf-left: {max_ppm: 2400}, calf-right: {}}\n"
    )
    return path


def write_scenario(path: Path, *steps: str, duration: float = 120) -> Path:
    body = "".join(f"  - {s}\n" for s in steps) or "  []\n"
    path.write_text(f"duration: {duration}\nsteps:\n{body}")
    return path


def start(
    tmp_path: Path,
    notify: NotifySocket,
    config: Path,
    scenario: Path,
    watchdog_usec: int | None = 1_000_000,
    **environ: str,
) -> subprocess.Popen[str]:
    env = dict(os.environ, NOTIFY_SOCKET=str(notify.path), **environ)
    env.pop("WATCHDOG_PID", None)
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    return subprocess.Popen(
        [*gunguard_command(), "run", "--config", str(config), "--sim-gun", str(scenario), "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


ARMED = "STATUS=armed: calf-left"
#: A loaded machine can stall a fresh daemon's loop before it arms: a trip the test did
#: not ask for, so the round is started again (its precondition failed, not the daemon).
UNASKED_TRIP = "STATUS=tripped: loop_overrun"


def start_armed(
    tmp_path: Path,
    notify: NotifySocket,
    config: Path,
    scenario: Path,
    attempts: int = 3,
    **environ: str,
) -> tuple[subprocess.Popen[str], int]:
    """:func:`start`, then wait for READY and for the scenario to arm calf-left; returns
    the process and the index of its READY message. A start whose loop overran before
    arming (a loaded machine) is killed and made again, up to ``attempts`` times."""
    for _ in range(attempts):
        notify.messages.clear()
        proc = start(tmp_path, notify, config, scenario, **environ)
        try:
            ready = notify.wait_for("READY=1")
            first = notify.wait_for_any((ARMED, UNASKED_TRIP), after=ready)
        except BaseException:
            finish(proc)
            raise
        if ARMED in notify.messages[first][1]:
            return proc, ready
        finish(proc)
    raise AssertionError(f"the loop overran before arming in {attempts} starts: {notify.messages}")


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate(timeout=DEADLINE_S)
    return out, err


# -- the SIGKILL soak's daemon (tests/realtime/test_kill_soak.py, bench.faults) -----------------
MAX_GAP_S = 0.1  # loop.max_loop_gap_ms in the config below


CONFIG = """\
hardware: {{pin_factory: mock}}
loop: {{max_loop_gap_ms: 100}}
storage: {{path: "{db}"}}
"""


SCENARIO = """\
duration: 600
steps:
  - {at: 0, reset: true}
  - {at: 0, gun: {ppm: 2200, force_n: 30}}
  - {at: 0, region: calf-left}
"""


class DaemonProcess:
    """One ``gunguard run`` process; its JSON event lines, timed as this process reads them."""

    def __init__(self, config: Path, scenario: Path, log: Path) -> None:
        self.started = time.monotonic()
        self.log = log.open("a")
        self.proc = subprocess.Popen(
            [
                *gunguard_command(),
                "run",
                "--config",
                str(config),
                "--sim-gun",
                str(scenario),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def events(self) -> list[dict]:
        return [json.loads(text) for _, text in self.lines if text.startswith("{")]

    def seen(self, event: str, **fields: object) -> float | None:
        """When this process read the first matching event line (after it happened)."""
        for at, text in self.lines:
            if text.startswith("{"):
                e = json.loads(text)
                if e["event"] == event and all(e.get(k) == v for k, v in fields.items()):
                    return at
        return None

    def wait_for(self, event: str, timeout: float = 15.0, **fields: object) -> float:
        deadline = time.monotonic() + timeout
        while (at := self.seen(event, **fields)) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise AssertionError(f"no {event} event; stderr in {self.log.name}")
            time.sleep(0.005)
        return at

    def stop(self, sig: int) -> float:
        """Send ``sig``, reap the process; the time after which it surely ran no more."""
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        gone = time.monotonic()
        self._reader.join(timeout=5)
        self.log.close()
        return gone


def stored(db: Path) -> tuple[float, float, int]:
    """(stored contact seconds of calf-left, newest session's flushed_mono, its id)."""
    # Not read-only: after a SIGKILL the WAL's index may need rebuilding, as the next
    # daemon would do. A plain reader commits nothing and leaves the WAL to the daemon.
    with sqlite3.connect(db, timeout=5) as conn:
        (seconds,) = conn.execute(
            "SELECT COALESCE(SUM(r.contact_s), 0) FROM treatments t"
            " JOIN treatment_rates r ON r.treatment_id = t.id WHERE t.region = 'calf-left'"
        ).fetchone()
        flushed, session = conn.execute(
            "SELECT flushed_mono, id FROM sessions ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return float(seconds), float(flushed), int(session)
