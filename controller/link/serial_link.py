"""The Pi's side of the UART link to the gun's firmware.

Two layers, so that the protocol logic runs in virtual time without a port:

* :class:`LinkEndpoint` is the pure, clock-driven state machine (bytes and ``now``
  in, bytes out): handshake, heartbeats, link state, and reconciliation of what the
  Pi wants (rate cap, stop/release, warning) against what the firmware reports.
* :class:`SerialTransport` is a daemon thread that owns the pyserial port, pumps
  bytes between it and the endpoint, and reopens the port with exponential backoff.

The link is a second, independent way to stop the motor. The GPIO power cut never
waits on anything here, and nothing here may block the control loop.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import serial

from gunguard.core.clock import Clock, RealClock
from gunguard.link.protocol import (
    DECODE_ERROR_REASONS,
    PROTOCOL_VERSION,
    SEQ_MODULO,
    Button,
    ButtonId,
    Frame,
    FrameDecoder,
    Heartbeat,
    Hello,
    HelloReply,
    Message,
    PressKind,
    RateCap,
    Release,
    Status,
    Stop,
    StopReason,
    Warn,
    WarningCode,
    seq_covers,
)

log = logging.getLogger(__name__)

LinkState = Literal["ok", "silent", "down"]

# Tolerance for comparing float times against deadlines (virtual time accumulates
# rounding error; a microsecond is far below any period used here).
_EPS = 1e-6
MAX_PENDING_BUTTONS = 64


@dataclass(frozen=True, slots=True)
class FirmwareStatus:
    """The last STATUS from the firmware and when (monotonic) it arrived."""

    received_at: float
    status: Status


@dataclass(frozen=True, slots=True)
class ButtonEvent:
    """A button press reported by the firmware."""

    received_at: float
    button: ButtonId
    kind: PressKind


@dataclass(slots=True)
class _Intent:
    """Something the Pi wants the firmware to hold, resent until a STATUS shows it.

    Commands are idempotent, so a lost frame is repaired by sending the command
    again; the firmware's STATUS echoes its state and the ``ack`` header field says
    which of our frames that STATUS already reflects.
    """

    message: Message
    shown_by: Callable[[Status], bool]
    one_shot: bool = False  # forget once confirmed (RELEASE)
    first_sent_at: float | None = None
    sent_at: float | None = None
    seq: int | None = None
    confirmed: bool = False

    def forget_transmissions(self) -> None:
        """The peer may have restarted: assert the intent again from scratch."""
        self.first_sent_at = self.sent_at = self.seq = None
        self.confirmed = False


class LinkEndpoint:
    """Protocol state machine of the Pi side; pure and clock-driven, not thread-safe.

    Feed it every byte received with :meth:`feed` and write whatever :meth:`outgoing`
    returns. Times are monotonic seconds from the injected clock of the caller.
    """

    def __init__(
        self,
        *,
        heartbeat_ms: float = 100,
        heartbeat_timeout_ms: float = 500,
        retry_ms: float = 200,
        deadman_ms: float | None = None,
    ) -> None:
        if not 0 < heartbeat_ms < heartbeat_timeout_ms:
            raise ValueError("need 0 < heartbeat_ms < heartbeat_timeout_ms")
        if 3 * heartbeat_ms > heartbeat_timeout_ms:
            log.warning(
                "heartbeat_ms=%g is more than a third of heartbeat_timeout_ms=%g: two lost "
                "frames in a row will trip the firmware's dead-man stop",
                heartbeat_ms,
                heartbeat_timeout_ms,
            )
        self.heartbeat_s = heartbeat_ms / 1000
        self.timeout_s = heartbeat_timeout_ms / 1000
        self.retry_s = retry_ms / 1000
        # What HELLO tells the firmware to use as its dead-man timeout; the firmware
        # clamps it to 100..1000 ms (docs/serial-protocol.md).
        self.deadman_ms = min(
            round(heartbeat_timeout_ms if deadman_ms is None else deadman_ms), 0xFFFF
        )
        self.decoder = FrameDecoder()

        self.firmware_id: str | None = None
        self.peer_version: int | None = None
        self.latest_status: FirmwareStatus | None = None
        self.last_valid_at: float | None = None

        self._connected = True
        self._handshake_ok = False  # a matching HELLO_REPLY since the last reset
        self._had_handshake = False  # ... at any time on this connection
        self._version_mismatch = False
        self._hello_needed = True
        self._flush_pending = True  # send a lone 0x00 first to end any partial frame
        self._tx_seq = 0
        self._rx_seq: int | None = None
        self._status_ack: int | None = None  # ack field of latest_status's frame
        self._last_tx_at: float | None = None
        self._last_hello_at: float | None = None
        self._buttons: collections.deque[ButtonEvent] = collections.deque()
        self._latch: _Intent | None = None
        self._cap: _Intent | None = None
        self._warning: _Intent | None = None

        self.frames_sent = 0
        self.frames_lost = 0  # gaps in the firmware's sequence numbers
        self.frames_unexpected = 0  # valid frames of a Pi -> gun type (echo, loopback)
        self.version_mismatches = 0
        self.silences = 0  # ok -> silent transitions
        self.commands_sent = 0
        self.commands_resent = 0
        self.releases_failed = 0
        self.buttons_dropped = 0

    # ----------------------------------------------------------- control side

    def send_rate_cap(self, max_ppm: int, region: int | None = None) -> None:
        """Hold the firmware to at most ``max_ppm`` (0 = must not run) until changed.

        Calling it again with the same values changes nothing (safe to call every tick).
        """
        self._cap = _renewed(
            self._cap, _Intent(RateCap(max_ppm, region), lambda s: s.cap_ppm == max_ppm)
        )

    def send_stop(self, reason: StopReason) -> None:
        """Stop and latch the firmware; kept asserted until :meth:`send_release`.

        Calling it again with the same reason changes nothing."""
        self._latch = _renewed(self._latch, _Intent(Stop(reason), lambda s: s.stop_latched))

    def send_release(self) -> None:
        """Clear the firmware's latched stop, once: an action, not a state to hold.

        Retried until a STATUS confirms it or ``heartbeat_timeout_ms`` passes, and never
        repeated later, so a stop the firmware latches by itself afterwards (its dead-man
        rule) stays latched until the supervisor calls this again. Do not call it every
        tick: each call after a confirmation is a new release.
        """
        self._latch = _renewed(
            self._latch, _Intent(Release(), lambda s: not s.stop_latched, one_shot=True)
        )

    def send_warning(self, code: WarningCode) -> None:
        """Show ``code`` on the gun until replaced; ``WarningCode.NONE`` clears it.

        Calling it again with the same code changes nothing."""
        self._warning = _renewed(self._warning, _Intent(Warn(code), lambda s: s.warning == code))

    def pop_buttons(self) -> list[ButtonEvent]:
        """Button presses received since the last call, oldest first."""
        events = list(self._buttons)
        self._buttons.clear()
        return events

    def state(self, now: float) -> LinkState:
        """``ok``: handshake done and a valid frame within the timeout. ``silent``: the
        firmware answered on this connection but fell quiet (or is handshaking again).
        ``down``: no port, no handshake yet on this connection, or a version mismatch."""
        if not self._connected or self._version_mismatch:
            return "down"
        if not self._handshake_ok:
            return "silent" if self._had_handshake else "down"
        if self.last_valid_at is None or now - self.last_valid_at > self.timeout_s + _EPS:
            return "silent"
        return "ok"

    def counters(self) -> dict[str, int]:
        """Snapshot of every counter, for logs and the status line (always the same keys)."""
        errors = self.decoder.errors
        return {
            "frames_ok": self.decoder.frames_ok,
            "frames_bad": self.decoder.frames_bad,
            **{f"bad_{reason}": errors[reason] for reason in DECODE_ERROR_REASONS},
            "frames_sent": self.frames_sent,
            "frames_lost": self.frames_lost,
            "frames_unexpected": self.frames_unexpected,
            "version_mismatches": self.version_mismatches,
            "silences": self.silences,
            "commands_sent": self.commands_sent,
            "commands_resent": self.commands_resent,
            "releases_failed": self.releases_failed,
            "buttons_dropped": self.buttons_dropped,
        }

    def stop_confirmed(self) -> bool:
        """Whether the STOP asserted now is confirmed: a STATUS whose ``ack`` covers the
        STOP's latest transmission shows STOP_LATCHED (docs/serial-protocol.md, §8.5)."""
        latch = self._latch
        return latch is not None and isinstance(latch.message, Stop) and self._shown(latch)

    # ------------------------------------------------------- transport side

    def connection_made(self, now: float) -> None:
        """A (new) port is open: start over with a flush and a handshake."""
        self._connected = True
        self._reset_session(reason="port opened")

    def connection_lost(self, now: float) -> None:
        """The port is gone; the state is ``down`` until :meth:`connection_made`."""
        self._connected = False
        self._reset_session(reason="port closed")

    def feed(self, data: bytes, now: float) -> None:
        """Consume bytes received at ``now``. Never raises on any input."""
        for frame in self.decoder.feed(data):
            self._handle(frame, now)

    def outgoing(self, now: float) -> bytes:
        """Bytes to write now: flush, HELLO, commands due, or a HEARTBEAT when idle."""
        if not self._connected:
            return b""
        self._check_silence(now)
        out = bytearray()
        if self._flush_pending:
            out += b"\x00"
            self._flush_pending = False
        if self._hello_needed and _due(self._last_hello_at, self.heartbeat_s, now):
            out += self._frame(Hello(self.deadman_ms), now)
            self._last_hello_at = now
        for intent in self._intents():
            if self._intent_due(intent, now):
                self.commands_resent += intent.sent_at is not None
                self.commands_sent += 1
                intent.seq = self._tx_seq
                intent.first_sent_at = now if intent.first_sent_at is None else intent.first_sent_at
                intent.sent_at = now
                out += self._frame(intent.message, now)
        if _due(self._last_tx_at, self.heartbeat_s, now):
            out += self._frame(Heartbeat(), now)
        return bytes(out)

    # -------------------------------------------------------------- internals

    def _frame(self, message: Message, now: float) -> bytes:
        ack = 0 if self._rx_seq is None else self._rx_seq
        data = message.encode(seq=self._tx_seq, ack=ack)
        self._tx_seq = (self._tx_seq + 1) % SEQ_MODULO
        self._last_tx_at = now
        self.frames_sent += 1
        return data

    def _intents(self) -> list[_Intent]:
        # A STOP goes first: it must never queue behind anything else. A RELEASE goes
        # after the cap, so a firmware released to run already holds the new cap
        # (docs/serial-protocol.md, §10: RATE_CAP, then RELEASE).
        latch = self._latch
        if latch is not None and isinstance(latch.message, Release):
            order = (self._cap, latch, self._warning)
        else:
            order = (latch, self._cap, self._warning)
        return [i for i in order if i is not None]

    def _intent_due(self, intent: _Intent, now: float) -> bool:
        if self._shown(intent):
            if intent.one_shot and intent is self._latch:
                self._latch = None
            return False
        if (
            intent.one_shot
            and intent.first_sent_at is not None
            and now - intent.first_sent_at > self.timeout_s + _EPS
        ):
            log.warning("firmware did not confirm %s; giving up", type(intent.message).__name__)
            self.releases_failed += 1
            if intent is self._latch:
                self._latch = None
            return False
        return _due(intent.sent_at, self.retry_s, now)

    def _shown(self, intent: _Intent) -> bool:
        """Whether the latest STATUS, sent after our last transmission of ``intent``
        reached the firmware (its ack says so), shows the intent held. Once confirmed,
        any later STATUS counts, so serial-number wrap-around cannot matter."""
        status = self.latest_status
        if status is None or intent.seq is None or self._status_ack is None:
            return False
        if not (intent.confirmed or seq_covers(self._status_ack, intent.seq)):
            return False
        intent.confirmed = intent.shown_by(status.status)
        return intent.confirmed

    def _check_silence(self, now: float) -> None:
        if self._hello_needed or self.last_valid_at is None:
            return
        if now - self.last_valid_at > self.timeout_s + _EPS:
            self.silences += 1
            log.warning(
                "gun firmware silent for %.0f ms; handshaking again",
                (now - self.last_valid_at) * 1000,
            )
            self._reset_session(reason="silence", new_connection=False)

    def _reset_session(self, *, reason: str, new_connection: bool = True) -> None:
        self._handshake_ok = False
        self._hello_needed = True
        self._last_hello_at = None
        self._rx_seq = None
        self._status_ack = None
        if new_connection:
            self._had_handshake = False
            self._version_mismatch = False
            self._flush_pending = True
            self.decoder.reset()
        if self._latch is not None and self._latch.one_shot:
            log.warning("pending RELEASE dropped (%s)", reason)
            self.releases_failed += 1
            self._latch = None
        for intent in self._intents():
            intent.forget_transmissions()

    def _handle(self, frame: Frame, now: float) -> None:
        message = frame.message
        if not message.FROM_GUN:
            self.frames_unexpected += 1
            return
        if isinstance(message, HelloReply):
            self._on_hello_reply(frame, message, now)
            return
        self._track_seq(frame.seq)
        self.last_valid_at = now
        if isinstance(message, Status):
            self.latest_status = FirmwareStatus(received_at=now, status=message)
            self._status_ack = frame.ack
        elif isinstance(message, Button):
            if len(self._buttons) >= MAX_PENDING_BUTTONS:
                self._buttons.popleft()
                self.buttons_dropped += 1
            self._buttons.append(ButtonEvent(now, message.button, message.kind))

    def _on_hello_reply(self, frame: Frame, message: HelloReply, now: float) -> None:
        self.peer_version = frame.version
        self.firmware_id = message.firmware_id
        if frame.version != PROTOCOL_VERSION:
            self.version_mismatches += 1
            if not self._version_mismatch:  # once per connection, not every HELLO
                log.error(
                    "gun firmware %r speaks protocol %d, gunguard speaks %d: link unusable",
                    message.firmware_id,
                    frame.version,
                    PROTOCOL_VERSION,
                )
            self._handshake_ok = False
            self._version_mismatch = True
            return
        self._rx_seq = frame.seq  # a firmware that restarted starts a new sequence
        self.last_valid_at = now
        if not self._handshake_ok:
            log.info("gun firmware %r: link up (protocol %d)", message.firmware_id, frame.version)
        self._handshake_ok = self._had_handshake = True
        self._version_mismatch = False
        self._hello_needed = False

    def _track_seq(self, seq: int) -> None:
        if self._rx_seq is not None:
            gap = (seq - self._rx_seq - 1) % SEQ_MODULO
            if gap < SEQ_MODULO // 2:
                self.frames_lost += gap
        self._rx_seq = seq


#: Counters that mean the line or the firmware misbehaves: each bad-frame reason, the
#: firmware's frames lost (gaps in its ``seq``), frames of the Pi's own types (an echo or
#: loopback) and HELLO_REPLYs of another protocol version.
ERROR_COUNTERS = (
    *(f"bad_{reason}" for reason in DECODE_ERROR_REASONS),
    "frames_lost",
    "frames_unexpected",
    "version_mismatches",
)
#: At most one log line about grown error counters per this many seconds.
ERROR_LOG_S = 10.0
#: How often the serial thread compares the counters (cheap, but not every 10 ms).
ERROR_CHECK_S = 1.0


class ErrorReport:
    """Says which link error counters grew, at most once per ``interval_s``.

    Bad frames are dropped silently by design (§2.2), so without this a flaky cable or
    a firmware bug would only show as a link that goes silent. The first growth is
    reported at once; later growth is summed up to the next allowed line, so a noisy
    line costs one log entry per interval, not one per frame. Pure: counters and ``now``
    in, a line (or None) out.
    """

    def __init__(self, interval_s: float = ERROR_LOG_S) -> None:
        self.interval_s = interval_s
        self._reported: dict[str, int] = {}
        self._reported_at: float | None = None

    def check(self, counters: Mapping[str, int], now: float) -> tuple[str, dict[str, str]] | None:
        """The message and its journal fields, if counters grew and a line is allowed."""
        if self._reported_at is not None and now - self._reported_at < self.interval_s - _EPS:
            return None
        grown = {
            name: counters.get(name, 0) - self._reported.get(name, 0)
            for name in ERROR_COUNTERS
            if counters.get(name, 0) > self._reported.get(name, 0)
        }
        if not grown:
            return None
        since = (
            "since start"
            if self._reported_at is None
            else f"in the last {now - self._reported_at:.0f} s"
        )
        self._reported = {name: counters.get(name, 0) for name in ERROR_COUNTERS}
        self._reported_at = now
        growth = ", ".join(f"{name} +{n}" for name, n in grown.items())
        totals = ", ".join(f"{name} {counters.get(name, 0)}" for name in grown)
        text = (
            f"gun firmware link errors {since}: {growth} (totals: {totals}; "
            f"frames ok {counters.get('frames_ok', 0)})"
        )
        fields = {"GUNGUARD_EVENT": "link_errors"}
        fields.update({f"GUNGUARD_{name.upper()}": str(n) for name, n in grown.items()})
        return text, fields


def _renewed(current: _Intent | None, wanted: _Intent) -> _Intent:
    """Keep the intent in progress if it already asks for the same thing."""
    if current is not None and current.message == wanted.message:
        return current
    return wanted


def _due(last: float | None, period: float, now: float) -> bool:
    return last is None or now - last + _EPS >= period


class Backoff:
    """Exponential reconnect delays: initial, doubled each failure, capped."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0, factor: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


SerialFactory = Callable[..., Any]


class SerialTransport:
    """Daemon thread that owns the serial port and pumps it through a :class:`LinkEndpoint`.

    Every public method only takes a short lock around the endpoint, so the control
    loop never waits on the port. The thread never lets an exception escape: any
    failure closes the port and reopens it after a backoff delay.
    """

    def __init__(
        self,
        endpoint: LinkEndpoint,
        port: str,
        *,
        baudrate: int = 115200,
        clock: Clock | None = None,
        poll_s: float = 0.01,
        write_timeout_s: float = 0.5,
        backoff: Backoff | None = None,
        serial_factory: SerialFactory = serial.serial_for_url,
        error_log_s: float = ERROR_LOG_S,
    ) -> None:
        self.endpoint = endpoint
        self.port = port
        self.baudrate = baudrate
        self.clock: Clock = clock or RealClock()
        self.poll_s = poll_s
        self.write_timeout_s = write_timeout_s
        self.backoff = backoff or Backoff()
        self._serial_factory = serial_factory
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serial: Any = None
        self.errors = ErrorReport(error_log_s)
        self._next_error_check = 0.0
        self.connects = 0
        self.open_failures = 0
        self.open_failures_in_row = 0
        self.disconnects = 0

    # ------------------------------------------------------- control-loop API

    def send_rate_cap(self, max_ppm: int, region: int | None = None) -> None:
        with self._lock:
            self.endpoint.send_rate_cap(max_ppm, region)

    def send_stop(self, reason: StopReason) -> None:
        with self._lock:
            self.endpoint.send_stop(reason)

    def send_release(self) -> None:
        with self._lock:
            self.endpoint.send_release()

    def send_warning(self, code: WarningCode) -> None:
        with self._lock:
            self.endpoint.send_warning(code)

    def state(self, now: float) -> LinkState:
        with self._lock:
            return self.endpoint.state(now)

    @property
    def latest_status(self) -> FirmwareStatus | None:
        with self._lock:
            return self.endpoint.latest_status

    def pop_buttons(self) -> list[ButtonEvent]:
        with self._lock:
            return self.endpoint.pop_buttons()

    def counters(self) -> dict[str, int]:
        with self._lock:
            counts = self.endpoint.counters()
        counts.update(
            connects=self.connects, open_failures=self.open_failures, disconnects=self.disconnects
        )
        return counts

    def describe(self, now: float) -> dict[str, Any]:
        """The link for ``gunguard status``: state, port, firmware id and every counter,
        from one consistent snapshot (a short lock; never waits for the port)."""
        with self._lock:
            endpoint = self.endpoint
            state = endpoint.state(now)
            firmware_id = endpoint.firmware_id
            counts = endpoint.counters()
        counts.update(
            connects=self.connects, open_failures=self.open_failures, disconnects=self.disconnects
        )
        return {"state": state, "port": self.port, "firmware_id": firmware_id, **counts}

    @property
    def connected(self) -> bool:
        return self._serial is not None

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("transport already started")
        self._thread = threading.Thread(target=self._run, name="gunguard-serial", daemon=True)
        self._thread.start()

    def confirm_stop(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` for the firmware to confirm the STOP asserted now.

        For the exit path: gunguard asserts STOP(shutdown), then waits here, so the port
        is not closed under a STOP still on its way. Returns at once (False) when no
        handshaken firmware could confirm it (no port, link down). Never called from the
        control loop: it sleeps.
        """
        deadline = self.clock.monotonic() + timeout_s
        while True:
            now = self.clock.monotonic()
            with self._lock:
                if self.endpoint.stop_confirmed():
                    return True
                state = self.endpoint.state(now)
            if state == "down" or not self.alive or now >= deadline:
                return False
            time.sleep(min(0.005, max(0.0, deadline - now)))

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the port; returns once the thread has ended.

        What the endpoint still has to send (a STOP asserted just before) is written and
        drained to the wire before the port closes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("serial thread did not stop within %.1f s", timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---------------------------------------------------------------- thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._cycle()
            except Exception:  # last resort: the thread must survive anything
                log.exception("serial transport error on %s", self.port)
                self._stop.wait(self.backoff.next_delay())

    def _cycle(self) -> None:
        """One connection: open (or fail), pump until an error, close, back off."""
        try:
            port = self._open()
        except Exception as exc:
            self.open_failures += 1
            # The first failure of a streak is worth a warning, the rest only debug.
            level = logging.WARNING if self.open_failures_in_row == 0 else logging.DEBUG
            log.log(level, "cannot open %s: %s; retrying with backoff", self.port, exc)
            self.open_failures_in_row += 1
            self._stop.wait(self.backoff.next_delay())
            return
        self.open_failures_in_row = 0
        self.connects += 1
        log.info("serial port %s open", self.port)
        try:
            self._pump(port)
        except Exception as exc:
            self.disconnects += 1
            log.warning("serial port %s failed: %s; reconnecting", self.port, exc)
        finally:
            self._close(port)
        self._stop.wait(self.backoff.next_delay())

    def _open(self) -> Any:
        port = self._serial_factory(
            self.port,
            baudrate=self.baudrate,
            timeout=self.poll_s,
            write_timeout=self.write_timeout_s,
            exclusive=True,
        )
        try:
            port.reset_input_buffer()  # bytes from before we opened are stale
        except Exception:
            self._close_quietly(port)
            raise
        with self._lock:
            self.endpoint.connection_made(self.clock.monotonic())
        self._serial = port
        return port

    def _pump(self, port: Any) -> None:
        with self._lock:
            heard_before = self.endpoint.last_valid_at
        while not self._stop.is_set():
            with self._lock:
                out = self.endpoint.outgoing(self.clock.monotonic())
            if out:
                port.write(out)
            data = port.read(max(1, port.in_waiting))
            if data:
                with self._lock:
                    self.endpoint.feed(data, self.clock.monotonic())
                    heard = self.endpoint.last_valid_at
                if heard is not None and heard != heard_before:
                    self.backoff.reset()  # a working connection earns a fast retry
                    heard_before = heard
            self._report_errors()
        self._drain(port)

    def _drain(self, port: Any) -> None:
        """Closing: whatever is due (a STOP asserted at exit) goes out, then the kernel's
        buffer drains to the wire (tcdrain) before the port is closed."""
        try:
            with self._lock:
                out = self.endpoint.outgoing(self.clock.monotonic())
            if out:
                port.write(out)
            port.flush()
        except Exception as exc:
            log.warning("serial port %s: the last frames may be lost: %s", self.port, exc)

    def _report_errors(self) -> None:
        """Log which error counters grew, at most once per ``error_log_s`` (this thread)."""
        now = self.clock.monotonic()
        if now < self._next_error_check:
            return
        self._next_error_check = now + ERROR_CHECK_S
        line = self.errors.check(self.counters(), now)
        if line is not None:
            text, fields = line
            log.warning("%s", text, extra={"journal": fields})

    def _close(self, port: Any) -> None:
        self._serial = None
        with self._lock:
            self.endpoint.connection_lost(self.clock.monotonic())
        self._close_quietly(port)

    @staticmethod
    def _close_quietly(port: Any) -> None:
        try:
            port.close()
        except Exception as exc:
            log.debug("closing serial port failed: %s", exc)
