"""The control socket server: file safety, garbage, oversize lines, floods, slow subscribers.

The tests serve a virtual-time bench's supervisor (nothing ticks, so every answer
is exact). What abusive clients cost the real-time loop is measured by `make bench`
(bench/socketflood.py), not asserted here. Every wait polls a condition against a
generous deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gunguard.config import loader as configfile
from gunguard.core.clock import RealClock
from gunguard.operator.protocol import MAX_LINE_BYTES
from gunguard.operator.server import ControlServer, ControlSocketError, daemon_socket_path
from tests.waiting import wait_for

DEADLINE_S = 20.0


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory: AF_UNIX paths are limited to 107 bytes, pytest's are long."""
    path = Path(tempfile.mkdtemp(prefix="gg-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Client:
    """A test client: raw bytes out, JSON lines in, every read bounded by a deadline."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(DEADLINE_S)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        return json.loads(raw)

    def request(self, **obj: object) -> dict:
        self.send(json.dumps(obj).encode() + b"\n")
        return self.line()

    def until_eof(self) -> int:
        """Read until the server closes; returns the bytes read."""
        total = 0
        while chunk := self.sock.recv(65536):
            total += len(chunk)
        return total

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def bench(gunguard_bench):
    return gunguard_bench()


@pytest.fixture
def serve(bench, sockdir):
    servers: list[ControlServer] = []

    def make(**kwargs: object) -> ControlServer:
        server = ControlServer(bench.supervisor, sockdir / "c.sock", RealClock(), **kwargs)
        servers.append(server.start())
        return server

    yield make
    for server in servers:
        server.close()


# -- the socket file ------------------------------------------------------------------------
def test_socket_is_mode_0660_and_removed_on_close(serve, sockdir):
    server = serve()
    st = os.lstat(sockdir / "c.sock")
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    server.close()
    assert not (sockdir / "c.sock").exists()
    server.close()  # idempotent


def test_a_stale_socket_is_replaced(bench, sockdir):
    path = sockdir / "c.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: what a killed daemon leaves
    with ControlServer(bench.supervisor, path):
        assert Client(path).request(cmd="status")["ok"] is True


def test_a_live_socket_and_a_regular_file_are_never_removed(bench, sockdir):
    path = sockdir / "c.sock"
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(path))
    live.listen(1)
    try:
        with pytest.raises(ControlSocketError, match="another process is listening"):
            ControlServer(bench.supervisor, path).open()
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        live.close()
    path.unlink()
    path.write_text("my notes")
    with pytest.raises(ControlSocketError, match="exists and is not a socket"):
        ControlServer(bench.supervisor, path).open()
    assert path.read_text() == "my notes"


def test_close_unlinks_only_its_own_socket(bench, sockdir):
    path = sockdir / "c.sock"
    server = ControlServer(bench.supervisor, path).start()
    path.unlink()  # someone else's socket now takes the name
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path))
    try:
        server.close()
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        other.close()


def test_simulated_runs_get_a_socket_only_when_asked(tmp_path):
    cfg = configfile.load("default")
    assert daemon_socket_path(cfg, None, simulated=True) is None
    assert daemon_socket_path(cfg, "x.sock", simulated=True) == Path("x.sock").absolute()
    assert daemon_socket_path(cfg, None, simulated=False).name == "control.sock"


# -- the protocol on the wire ------------------------------------------------------------------
def test_garbage_unknown_and_oversize_lines_get_errors_and_the_client_stays(serve, sockdir):
    serve()
    client = Client(sockdir / "c.sock")
    client.send(b"garbage\n")
    assert client.line()["error"]["code"] == "bad_json"
    client.send(b'{"cmd": "self_destruct", "id": 9}\n')
    assert client.line() == {
        "ok": False,
        "id": 9,
        "error": {
            "code": "unknown_command",
            "message": "unknown cmd 'self_destruct'; "
            "one of status, select_region, reset, stop, subscribe, session, pain",
        },
    }
    # An over-long line arriving in pieces: one error, then the tail up to its newline
    # is discarded without being answered.
    for _ in range(5):
        client.send(b"x" * (MAX_LINE_BYTES - 100))
    client.send(b'yyy", "cmd": "status"}\n')
    assert client.line()["error"]["code"] == "line_too_long"
    client.send(b"\n\n  \n")  # blank lines are ignored
    client.send(b"z" * (MAX_LINE_BYTES + 1) + b"\n")  # whole, in one write
    assert client.line()["error"]["code"] == "line_too_long"
    answer = client.request(cmd="status", id="after")
    assert answer["ok"] is True and answer["id"] == "after"
    assert answer["status"]["state"] == "idle"
    client.close()


def test_commands_act_on_the_supervisor(serve, sockdir, bench):
    serve()
    client = Client(sockdir / "c.sock")
    assert client.request(cmd="select_region", region="calf-left") == {
        "ok": True,
        "id": None,
        "cmd": "select_region",
        "region": "calf-left",
    }
    assert bench.supervisor.region == "calf-left" and bench.power_on
    refused = client.request(cmd="select_region", region="neck")
    assert refused == {
        "ok": False,
        "cmd": "select_region",
        "error": {
            "code": "refused",
            "message": "neck is never treated with a massage gun",
            "reason": "never_allowed",
            "region": "neck",
        },
    }
    assert bench.supervisor.region is None and not bench.power_on
    bench.supervisor.trip("overspeed", "test")
    bench.supervisor.trip("power_switch_fault", "pulses after the cut")
    assert client.request(cmd="reset") == {
        "ok": True,
        "id": None,
        "cmd": "reset",
        "cleared": "overspeed",
        "reasons": ["overspeed", "power_switch_fault"],
    }
    assert bench.supervisor.latched is None
    assert client.request(cmd="reset")["cleared"] is None
    assert client.request(cmd="reset")["reasons"] == []
    assert client.request(cmd="select_region", region="calf-right")["ok"] is True
    assert client.request(cmd="stop") == {"ok": True, "id": None, "cmd": "stop"}
    assert bench.supervisor.region is None and not bench.power_on


def test_subscription_streams_status_at_its_rate_and_events_as_they_happen(serve, sockdir):
    serve()
    watcher = Client(sockdir / "c.sock")
    ack = watcher.request(cmd="subscribe", hz=20)
    assert ack == {
        "ok": True,
        "id": None,
        "cmd": "subscribe",
        "hz": 20.0,
        "events": True,
        "protocol": 1,
    }
    start = time.monotonic()
    seqs = [watcher.line()["seq"] for _ in range(10)]
    assert seqs == list(range(1, 11))
    assert time.monotonic() - start >= 0.4, "20 Hz: ten updates take at least 0.45 s"
    operator = Client(sockdir / "c.sock")
    operator.request(cmd="select_region", region="calf-left")
    seen: list[dict] = []
    while not any(
        line.get("stream") == "event" and line["event"]["event"] == "power" for line in seen
    ):
        seen.append(watcher.line())
    event_lines = [line["event"] for line in seen if line.get("stream") == "event"]
    assert [(e["event"], e.get("region"), e.get("on")) for e in event_lines] == [
        ("region", "calf-left", None),
        ("warning", "calf-left", None),  # near_artery: the back of the knee
        ("power", None, True),
    ]
    status = wait_for(
        lambda: (line := watcher.line()).get("stream") == "status" and line["status"],
        "a status after the selection",
    )
    assert status["state"] == "armed" and status["region"] == "calf-left"


def test_a_slow_subscriber_is_dropped_while_another_is_served(serve, sockdir):
    server = serve(out_limit=32 * 1024, sndbuf=8 * 1024)
    slow = Client(sockdir / "c.sock")
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.request(cmd="subscribe", hz=50, events=False)  # and then never reads
    fast = Client(sockdir / "c.sock")
    fast.request(cmd="subscribe", hz=50, events=False)
    end = time.monotonic() + DEADLINE_S
    while server.stats.dropped_slow == 0 and time.monotonic() < end:
        assert fast.line()["stream"] == "status"
    assert server.stats.dropped_slow == 1, "the stalled subscriber was never dropped"
    for _ in range(10):  # and the fast one is still served afterwards
        assert fast.line()["stream"] == "status"
    assert slow.until_eof() > 0  # what had reached its socket, then EOF
    wait_for(lambda: server.client_count == 1, "the slow client to be forgotten")


def test_a_flooding_client_is_throttled_and_others_are_answered(serve, sockdir):
    server = serve()
    flooder = Client(sockdir / "c.sock")
    stop = threading.Event()
    answers = {"n": 0}

    def flood() -> None:
        flooder.sock.settimeout(0.2)
        while not stop.is_set():
            try:
                flooder.sock.sendall(b"junk\n" * 2000)
            except TimeoutError:
                pass  # the server is not reading us: exactly the point
            except OSError:
                return
            with contextlib.suppress(TimeoutError, OSError):
                answers["n"] += flooder.sock.recv(1 << 20).count(b"\n")

    thread = threading.Thread(target=flood, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        wait_for(lambda: server.stats.throttled > 0, "the flooder to be throttled")
        good = Client(sockdir / "c.sock")
        latencies = []
        for i in range(20):
            sent = time.monotonic()
            assert good.request(cmd="status", id=i)["id"] == i
            latencies.append(time.monotonic() - sent)
        assert max(latencies) < 0.5, f"status took {max(latencies):.3f} s during the flood"
    finally:
        stop.set()
        thread.join(DEADLINE_S)
    elapsed = time.monotonic() - started
    # Served at its budget (a burst of 50, then 100 lines/s), not at its sending rate;
    # the polite client's 20 requests come out of its own budget.
    assert 50 <= server.stats.requests - 20 <= 50 + 100 * elapsed + 1
    assert answers["n"] > 0


def test_too_many_clients_get_an_error_and_are_closed(serve, sockdir):
    server = serve(max_clients=2)
    a, b = Client(sockdir / "c.sock"), Client(sockdir / "c.sock")
    assert a.request(cmd="status")["ok"] and b.request(cmd="status")["ok"]
    c = Client(sockdir / "c.sock")
    assert c.line()["error"]["code"] == "too_many_clients"
    assert c.until_eof() == 0
    assert server.stats.rejected_full == 1
    b.close()
    wait_for(lambda: server.client_count == 1, "b to go")
    assert Client(sockdir / "c.sock").request(cmd="status")["ok"]


def test_close_disconnects_clients_and_a_reconnect_fails(serve, sockdir):
    server = serve()
    client = Client(sockdir / "c.sock")
    client.request(cmd="subscribe", hz=5)
    server.close()
    client.until_eof()
    with pytest.raises(FileNotFoundError):
        Client(sockdir / "c.sock")


def test_no_chown_when_the_socket_already_has_its_group(
    gunguard_bench, tmp_path, monkeypatch, caplog
):
    """Under the unit's Group= the socket is born with the right group; its syscall filter
    forbids chown() even when nothing would change, so none is attempted."""
    import grp
    import os

    bench = gunguard_bench()
    group = grp.getgrgid(os.getgid()).gr_name  # the group a new socket gets here
    calls: list[tuple] = []

    def refuse(*args: object) -> None:
        calls.append(args)
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chown", refuse)
    with (
        caplog.at_level("WARNING"),
        ControlServer(bench.supervisor, tmp_path / "c.sock", RealClock(), group=group),
    ):
        pass
    assert calls == []
    assert "cannot give the control socket" not in caplog.text
