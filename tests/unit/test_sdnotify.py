"""The sd_notify protocol against real AF_UNIX datagram sockets, as systemd sets them up."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gunguard.service.sdnotify import Notifier, WatchdogGate, watchdog_usec_from_env


class Receiver:
    """The manager's end: a bound SOCK_DGRAM socket we read without blocking."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def messages(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.setblocking(False)
    yield Receiver(sock, str(path))
    sock.close()


@pytest.fixture
def abstract_receiver() -> Iterator[Receiver]:
    name = f"gunguard-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    yield Receiver(sock, "@" + name)
    sock.close()


def notifier_for(rx: Receiver, **extra: str) -> Notifier:
    env = {"NOTIFY_SOCKET": rx.env_value, **extra}
    return Notifier.from_env(env, pid=os.getpid())


def test_each_message_payload_exactly(receiver: Receiver) -> None:
    n = notifier_for(receiver)
    assert n.enabled
    assert n.ready()
    assert n.ready(status="idle")
    assert n.status("armed")
    assert n.status("tripped: rate 2600 ppm > 2400 ppm")
    assert n.watchdog()
    assert n.stopping()
    assert n.stopping(status="stopping: SIGTERM")
    assert receiver.messages() == [
        "READY=1",
        "READY=1\nSTATUS=idle",
        "STATUS=armed",
        "STATUS=tripped: rate 2600 ppm > 2400 ppm",
        "WATCHDOG=1",
        "STOPPING=1",
        "STOPPING=1\nSTATUS=stopping: SIGTERM",
    ]


def test_reloading_carries_monotonic_usec(receiver: Receiver) -> None:
    n = notifier_for(receiver)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    assert n.reloading(status="reloading /etc/gunguard/gunguard.yaml")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = receiver.messages()
    lines = first.split("\n")
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert len(lines) == 2
    second_lines = second.split("\n")
    assert second_lines[0] == "RELOADING=1"
    assert second_lines[1].startswith("MONOTONIC_USEC=")
    assert second_lines[2] == "STATUS=reloading /etc/gunguard/gunguard.yaml"
    assert len(second_lines) == 3


def test_abstract_namespace_socket(abstract_receiver: Receiver) -> None:
    n = notifier_for(abstract_receiver)
    assert n.ready(status="idle")
    assert abstract_receiver.messages() == ["READY=1\nSTATUS=idle"]


def test_status_newlines_cannot_inject_assignments(receiver: Receiver) -> None:
    n = notifier_for(receiver)
    n.status("tripped: bad\nWATCHDOG=1")
    assert receiver.messages() == ["STATUS=tripped: bad WATCHDOG=1"]


def test_without_notify_socket_everything_is_a_no_op() -> None:
    n = Notifier.from_env({}, pid=os.getpid())
    assert not n.enabled
    assert n.watchdog_interval is None
    assert n.ready(status="idle") is False
    assert n.status("x") is False
    assert n.watchdog() is False
    assert n.reloading() is False
    assert n.stopping() is False


def test_unsupported_socket_address_is_a_no_op(caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}, pid=os.getpid())
    assert not n.enabled
    assert "unsupported NOTIFY_SOCKET" in caplog.text


def test_vanished_socket_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone")}, pid=os.getpid())
    assert n.enabled
    with caplog.at_level(logging.DEBUG, logger="gunguard.service.sdnotify"):
        assert n.watchdog() is False
        assert n.watchdog() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per run of failures, then debug
    assert "systemd notification failed" in warnings[0].getMessage()


def test_full_socket_queue_does_not_block(receiver: Receiver) -> None:
    # Nobody reads: the queue fills and sendto would block without MSG_DONTWAIT.
    n = notifier_for(receiver)
    results = [n.watchdog() for _ in range(10_000)]
    assert results[0] is True
    assert results[-1] is False


def test_watchdog_interval_is_half_of_watchdog_usec(receiver: Receiver) -> None:
    n = notifier_for(receiver, WATCHDOG_USEC="2000000", WATCHDOG_PID=str(os.getpid()))
    assert n.watchdog_usec == 2_000_000
    assert n.watchdog_interval == 1.0


def test_watchdog_pid_mismatch_disables_the_watchdog(receiver: Receiver) -> None:
    n = notifier_for(receiver, WATCHDOG_USEC="2000000", WATCHDOG_PID=str(os.getpid() + 1))
    assert n.enabled
    assert n.watchdog_interval is None
    gate = WatchdogGate(n)
    assert not gate.enabled
    assert gate.maybe_ping(1e9, loop_healthy=True) is False
    assert receiver.messages() == []


def test_watchdog_without_pid_applies_to_us(receiver: Receiver) -> None:
    n = notifier_for(receiver, WATCHDOG_USEC="500000")
    assert n.watchdog_interval == 0.25


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "1000"}, 1000),
        ({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "4242"}, 1000),
        ({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "2s"}, None),
        ({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "me"}, None),
        ({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "0"}, None),
    ],
)
def test_sd_watchdog_enabled_semantics(env: dict[str, str], expected: int | None) -> None:
    assert watchdog_usec_from_env(env, pid=4242) == expected


def test_gate_pings_only_when_healthy_and_at_most_once_per_interval(
    receiver: Receiver,
) -> None:
    n = notifier_for(receiver, WATCHDOG_USEC="2000000", WATCHDOG_PID=str(os.getpid()))
    gate = WatchdogGate(n)
    assert gate.interval == 1.0
    sent = []
    # A 1 ms control loop in virtual time: healthy for 2.5 s, stale ticks for 2 s,
    # healthy again.
    for tick in range(6000):
        now = 100.0 + tick * 0.001
        healthy = not (2.5 <= now - 100.0 < 4.5)
        if gate.maybe_ping(now, healthy):
            sent.append(round(now - 100.0, 3))
    assert sent == [0.0, 1.0, 2.0, 4.5, 5.5]
    assert receiver.messages() == ["WATCHDOG=1"] * 5


def test_gate_first_healthy_tick_pings_and_unhealthy_never_does(receiver: Receiver) -> None:
    n = notifier_for(receiver, WATCHDOG_USEC="1000000")
    gate = WatchdogGate(n)
    assert gate.maybe_ping(0.0, loop_healthy=False) is False
    assert gate.maybe_ping(10.0, loop_healthy=False) is False
    assert receiver.messages() == []
    assert gate.maybe_ping(10.001, loop_healthy=True) is True
    assert gate.maybe_ping(10.5, loop_healthy=True) is False
    assert gate.maybe_ping(10.501, loop_healthy=True) is True
    assert receiver.messages() == ["WATCHDOG=1", "WATCHDOG=1"]


def test_gate_explicit_interval_and_validation(receiver: Receiver) -> None:
    n = notifier_for(receiver)  # no WATCHDOG_USEC
    assert not WatchdogGate(n).enabled
    gate = WatchdogGate(n, interval=0.2)
    assert gate.maybe_ping(0.0, True) is True
    assert gate.maybe_ping(0.1, True) is False
    assert gate.maybe_ping(0.2, True) is True
    with pytest.raises(ValueError):
        WatchdogGate(n, interval=0.0)


def test_closed_notifier_is_a_no_op(receiver: Receiver) -> None:
    n = notifier_for(receiver)
    n.close()
    assert not n.enabled
    assert n.ready() is False
    assert receiver.messages() == []
