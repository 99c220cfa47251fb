"""The systemd notify protocol (sd_notify, sd_watchdog_enabled), spoken directly.

One AF_UNIX datagram per notification to ``$NOTIFY_SOCKET``: newline-separated
``KEY=VALUE`` lines. No dependency, because the watchdog ping is sent from the
control-loop thread and must be cheap, non-blocking and unable to raise: a
notification that cannot be delivered is logged and dropped, never allowed to
stall or break supervision.

The watchdog is fed only through :class:`WatchdogGate`, which the control loop
calls with its own verdict on its health: a ping proves the loop is alive, so
nothing else (no timer thread) may send one.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

_WATCHDOG = b"WATCHDOG=1"
_STOPPING = "STOPPING=1"


def _clean(text: str) -> str:
    """One line: a newline inside STATUS= would start a new assignment."""
    return text.replace("\r", " ").replace("\n", " ")


def _socket_address(value: str) -> str | None:
    """The sendto() address for ``$NOTIFY_SOCKET``, or None if unsupported.

    ``@name`` is the abstract namespace (a leading NUL); otherwise an absolute
    path. Like sd_notify, anything else (``vsock:`` etc.) is not supported.
    """
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_usec_from_env(environ: Mapping[str, str], pid: int) -> int | None:
    """``WATCHDOG_USEC`` when it applies to process ``pid``, per sd_watchdog_enabled.

    Unset → None. ``WATCHDOG_PID`` set to another process (the variable was
    inherited by a child) → None. Unparsable or zero values are invalid: logged,
    None.
    """
    raw_usec = environ.get("WATCHDOG_USEC")
    if raw_usec is None:
        return None
    try:
        usec = int(raw_usec)
    except ValueError:
        log.warning("ignoring invalid WATCHDOG_USEC=%r", raw_usec)
        return None
    if usec <= 0:
        log.warning("ignoring invalid WATCHDOG_USEC=%r", raw_usec)
        return None
    raw_pid = environ.get("WATCHDOG_PID")
    if raw_pid is not None:
        try:
            target = int(raw_pid)
        except ValueError:
            log.warning("ignoring watchdog: invalid WATCHDOG_PID=%r", raw_pid)
            return None
        if target <= 0:
            log.warning("ignoring watchdog: invalid WATCHDOG_PID=%r", raw_pid)
            return None
        if target != pid:
            log.debug("watchdog is meant for pid %d, not %d", target, pid)
            return None
    return usec


class Notifier:
    """Sends notifications to systemd; a no-op when not started by systemd.

    Every method returns True when the datagram was handed to the kernel, False
    otherwise (not under systemd, socket gone, queue full). None of them raise or
    block.
    """

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        """``address`` as accepted by sendto() (abstract names start with NUL)."""
        self._address = address
        self._watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._failing = False
        if address is None:
            return
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            sock.setblocking(False)
        except OSError as exc:
            log.warning("cannot create the systemd notify socket: %s", exc)
            return
        self._sock = sock

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, pid: int | None = None) -> Notifier:
        """Built from ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET")
        if not raw:
            return cls(None)
        address = _socket_address(raw)
        if address is None:
            log.warning("unsupported NOTIFY_SOCKET=%r: systemd will not be notified", raw)
            return cls(None)
        usec = watchdog_usec_from_env(env, os.getpid() if pid is None else pid)
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        """True when notifications go somewhere."""
        return self._sock is not None

    @property
    def watchdog_usec(self) -> int | None:
        """``WatchdogSec=`` in microseconds, or None when no watchdog applies."""
        return self._watchdog_usec if self.enabled else None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings: half the watchdog timeout, as systemd advises."""
        usec = self.watchdog_usec
        return None if usec is None else usec / 2_000_000

    def _send(self, data: bytes) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            sock.sendto(data, socket.MSG_DONTWAIT, self._address)
        except OSError as exc:
            # Warn once per run of failures: the control loop must not flood the log.
            if not self._failing:
                self._failing = True
                log.warning("systemd notification failed (%s): %r", exc, data[:80])
            else:
                log.debug("systemd notification failed (%s): %r", exc, data[:80])
            return False
        if self._failing:
            self._failing = False
            log.info("systemd notifications delivered again")
        return True

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram (newlines in them are flattened)."""
        if self._sock is None or not assignments:
            return False
        return self._send("\n".join(_clean(a) for a in assignments).encode())

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: config valid, hardware initialised, power verified off."""
        if status is None:
            return self.send("READY=1")
        return self.send("READY=1", f"STATUS={status}")

    def status(self, text: str) -> bool:
        """``STATUS=``: the one-line state shown by ``systemctl status``."""
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        """``WATCHDOG=1``. Call through :class:`WatchdogGate`, not directly."""
        return self._send(_WATCHDOG)

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC=`` (systemd ≥ 253 requires it).

        Follow with :meth:`ready` once the new configuration is in force or has
        been rejected.
        """
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        lines = ["RELOADING=1", f"MONOTONIC_USEC={now_usec}"]
        if status is not None:
            lines.append(f"STATUS={status}")
        return self.send(*lines)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: sent on SIGTERM, before power is cut and the loop ends."""
        if status is None:
            return self.send(_STOPPING)
        return self.send(_STOPPING, f"STATUS={status}")

    def close(self) -> None:
        """Release the socket; later calls become no-ops."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


class WatchdogGate:
    """Feeds systemd's watchdog from the control loop, and only while it is healthy.

    :meth:`maybe_ping` is called on every tick with the loop's monotonic time and
    its verdict on its own health (fresh ticks, sensors answering). When no ping is
    due it costs one float comparison. An unhealthy loop simply stops pinging, and
    systemd aborts the service after ``WatchdogSec=``.
    """

    __slots__ = ("_interval", "_next_due", "_notifier")

    def __init__(self, notifier: Notifier, interval: float | None = None) -> None:
        """``interval`` defaults to the notifier's (half of ``WATCHDOG_USEC``)."""
        if interval is None:
            interval = notifier.watchdog_interval
        if interval is not None and not interval > 0:
            raise ValueError(f"watchdog interval must be positive, got {interval!r}")
        self._notifier = notifier
        self._interval = interval if interval is not None else math.inf
        # Disabled watchdog: never due. Enabled: the first healthy tick pings.
        self._next_due = -math.inf if interval is not None else math.inf

    @property
    def enabled(self) -> bool:
        """True when a watchdog is configured (pings will be sent)."""
        return self._interval != math.inf

    @property
    def interval(self) -> float | None:
        """Seconds between pings, or None when disabled."""
        return None if self._interval == math.inf else self._interval

    def maybe_ping(self, now: float, loop_healthy: bool) -> bool:
        """Send ``WATCHDOG=1`` if one is due and the loop is healthy; True if sent."""
        if now < self._next_due:
            return False
        if not loop_healthy:
            return False
        # Due again one interval after this ping; a failed send is not retried
        # sooner, so a missing socket cannot turn every tick into a syscall.
        self._next_due = now + self._interval
        return self._notifier.watchdog()
