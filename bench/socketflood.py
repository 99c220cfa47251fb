"""The control socket flooded by clients, and what that does to the loop.

Runs in the loop-timing worker (:mod:`bench.looptiming`): the daemon's
:class:`gunguard.operator.server.ControlServer` serves the rig's supervisor on a
socket in a temporary directory while client *processes* (operators are other
processes) hammer it:

* two pipelining clients send ``status`` requests as fast as the socket takes them
  and read every answer;
* one subscriber asks for status updates at the protocol's maximum rate, with events;
* one client connects and disconnects in a loop.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DIST_COLUMNS, Section, Table, Target, dist_row, pending, scaled

LATE_FLOODED = Target("<=", 2.0)  # ms, p99.9: a flood is load, so the loaded target
#: The experiment: a shorter GIL switch interval than CPython's 5 ms.
SWITCH_INTERVAL_S = 0.0005

CLIENT = r"""
import json, selectors, socket, sys, time
path, mode, seconds, hz = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
end = time.monotonic() + seconds
sent = received = lines = connects = dropped = 0

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s

if mode == "churn":
    while time.monotonic() < end:
        try:
            connect().close()
            connects += 1
        except OSError:
            dropped += 1
        time.sleep(0.001)
elif mode == "subscribe":
    s = connect()
    s.sendall(json.dumps({"cmd": "subscribe", "hz": hz, "events": True}).encode() + b"\n")
    s.settimeout(0.5)
    while time.monotonic() < end:
        try:
            data = s.recv(65536)
        except TimeoutError:
            continue
        if not data:
            dropped += 1
            break
        received += len(data)
        lines += data.count(b"\n")
else:
    s = connect()
    s.setblocking(False)
    burst = b'{"cmd": "status"}\n' * 32
    pending = b""
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    while time.monotonic() < end:
        for _key, mask in sel.select(0.1):
            if mask & selectors.EVENT_WRITE:
                pending = pending or burst
                try:
                    n = s.send(pending)
                except (BlockingIOError, InterruptedError):
                    n = 0
                except OSError:
                    dropped += 1
                    end = 0
                    break
                sent += pending[:n].count(b"\n")
                pending = pending[n:]
            if mask & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    dropped += 1
                    end = 0
                    break
                if not data:
                    dropped += 1
                    end = 0
                    break
                received += len(data)
                lines += data.count(b"\n")
print(json.dumps({"mode": mode, "sent": sent, "received_bytes": received,
                  "lines": lines, "connects": connects, "dropped": dropped}))
"""

CLIENTS = ("pipeline", "pipeline", "subscribe", "churn")


def available() -> bool:
    return importlib.util.find_spec("gunguard.operator.server") is not None


class FloodClients:
    """Parent side: once the worker's socket exists, the flooding client processes."""

    def __init__(self, path: Path, seconds: float) -> None:
        self.path = path
        self._seconds = seconds
        self._procs: list[subprocess.Popen[str]] = []

    def start(self) -> None:
        from gunguard.operator.protocol import MAX_HZ

        deadline = time.monotonic() + 30.0
        while not self.path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker never opened {self.path}")
            time.sleep(0.01)
        time.sleep(0.2)  # the loop is ticking
        self._procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    CLIENT,
                    str(self.path),
                    mode,
                    str(self._seconds - 1.0),
                    str(MAX_HZ),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for mode in CLIENTS
        ]

    def stop(self) -> dict[str, Any]:
        clients = []
        for proc in self._procs:
            try:
                out, err = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            lines = out.strip().splitlines()
            clients.append(json.loads(lines[-1]) if lines else {"error": err.strip()[-500:]})
        return {"clients": clients}


def flood_section(seconds: float) -> Section:
    title = "Loop timing with the control socket flooded"
    if not available():
        return pending(
            "socket_flood",
            title,
            "lateness_p999_ms_flooded",
            "tick lateness p99.9, control socket flooded",
            "ms",
            LATE_FLOODED,
            "the control socket (controller/control_socket.py)",
        )
    from bench.looptiming import FIFO_PRIORITY, can_fifo, longest_gap, run_worker

    section = Section("socket_flood", title)
    started = time.perf_counter()
    runs: list[tuple[str, int | None, tuple[str, ...], bool]] = [("SCHED_OTHER", None, (), True)]
    if can_fifo():
        fifo_name = f"SCHED_FIFO {FIFO_PRIORITY}"
        runs.append((fifo_name, FIFO_PRIORITY, (), True))
        runs.append(
            (
                f"{fifo_name} + sys.setswitchinterval({SWITCH_INTERVAL_S:g}) (experiment)",
                FIFO_PRIORITY,
                ("--switch-interval", str(SWITCH_INTERVAL_S)),
                False,
            )
        )
    rows = []
    for policy, fifo, flags, judged in runs:
        tmp = tempfile.mkdtemp(prefix="gunguard-bench-sock-")
        path = Path(tmp) / "control.sock"
        try:
            result = run_worker(
                seconds, fifo, "--flood", str(path), *flags, side=FloodClients(path, seconds)
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        sock = result["socket"]
        srv = sock["server"]
        label = f"flooded, {policy}"
        rows.append(
            [
                *dist_row(label, result["lateness_ms"], 1000.0, 0),
                round(longest_gap(result), 2),
                round(sock["requests_per_s"]),
                srv["throttled"],
                srv["dropped_slow"],
                ", ".join(result["trips"]) or "none",
            ]
        )
        section.data[label] = {
            **{k: v for k, v in result.items() if k != "lateness_ms"},
            "lateness_ms": scaled(result["lateness_ms"], 1.0, 6),
        }
        if not judged:
            continue
        section.metric(
            f"lateness_p999_ms_flooded_{policy.split()[0].lower()}",
            f"tick lateness p99.9, control socket flooded, {policy}",
            result["lateness_ms"]["p99.9"],
            "ms",
            LATE_FLOODED,
            note=f"{sock['requests_per_s']:.0f} requests/s served",
        )
    section.tables.append(
        Table(
            "Tick lateness with the control socket flooded (µs)",
            [
                *DIST_COLUMNS,
                "longest gap ms",
                "requests/s served",
                "throttled",
                "dropped slow",
                "trips",
            ],
            rows,
        )
    )
    section.notes += [
        f"{seconds:g} s per run, the loop-timing worker (1000 Hz, gun percussing) with "
        "the daemon's ControlServer on a socket in a temporary directory and "
        f"{len(CLIENTS)} client processes: {', '.join(CLIENTS)} (subscriber at the "
        "protocol's maximum rate). The clients run on this 2-CPU machine too, so a flood "
        "is also CPU load: the 'loaded' target applies.",
        "'throttled' counts the server's token-bucket pauses (100 requests/s per client, "
        "burst 50): a flooding client is left unread and the kernel pushes back on it.",
        "The last row is an experiment, not how gunguard runs: CPython hands the GIL to "
        "a waiting thread only after sys.getswitchinterval() (5 ms), which bounds how long "
        "a busy server thread can hold up a tick; the row shows the same flood with "
        f"{SWITCH_INTERVAL_S * 1000:g} ms.",
    ]
    section.seconds = time.perf_counter() - started
    return section
