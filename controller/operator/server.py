"""The control socket server: operators talk to the daemon here, and only here.

A Unix stream socket (no network listener) served by one thread with a selector.
Nothing in it can hold up the control loop: supervisor calls take the
supervisor's lock as briefly as any status display does, and supervisor events
reach this thread through a bounded queue and a wake-up pipe, never a socket
write on the loop's thread.

No client can hold up another either:

* every socket is non-blocking and every client has a bounded output buffer; one
  that does not read (a stalled subscriber, a client that pipelines without
  reading) is dropped when the buffer is full, never waited for;
* requests are rate-limited per client (a token bucket); a flooding client is
  simply not read until it has tokens again, so the kernel's socket buffer
  pushes back on it and it costs this thread nothing;
* a request line longer than :data:`MAX_LINE_BYTES` is answered with an error
  and discarded up to its newline without ever being buffered whole.

The socket file is created mode 0660, group ``gunguard`` when that group exists,
a stale file left by a killed daemon is removed only when it is a socket nobody
listens on, and the file is unlinked on close only if it is still ours.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import grp
import json
import logging
import os
import selectors
import socket
import stat
import struct
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gunguard.config.loader import ConfigError
from gunguard.config.schema import GunguardConfig
from gunguard.core.clock import Clock, RealClock
from gunguard.core.events import Event
from gunguard.core.supervisor import Supervisor
from gunguard.operator.protocol import (
    BAD_REQUEST,
    INTERNAL,
    INVALID_PLAN,
    LINE_TOO_LONG,
    MAX_LINE_BYTES,
    REFUSED,
    TOO_MANY_CLIENTS,
    ErrorInfo,
    ErrorResponse,
    PainRequest,
    PainResponse,
    Request,
    RequestError,
    ResetRequest,
    ResetResponse,
    SelectRegionRequest,
    SelectRegionResponse,
    SessionRequest,
    SessionResponse,
    SessionStatus,
    StatusRequest,
    StatusResponse,
    StopRequest,
    StopResponse,
    SubscribeRequest,
    SubscribeResponse,
    build_status,
    encode,
    parse_request,
    socket_path,
)
from gunguard.plan.files import load_plan
from gunguard.plan.runner import SessionRefused, SessionRunner

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
SOCKET_GROUP = "gunguard"
MAX_CLIENTS = 16
#: Bytes queued for one client beyond the kernel's buffer before it is dropped: a
#: status line is about 1-5 kB, so a stalled 10 Hz subscriber goes within seconds.
OUT_LIMIT_BYTES = 256 * 1024
SNDBUF_BYTES = 64 * 1024
REQUESTS_PER_S = 100.0
REQUEST_BURST = 50.0
RECV_BYTES = 16 * 1024
#: Requests served for one client before the thread passes through select() again,
#: which releases the GIL: a burst never holds the control loop's thread off for long.
LINES_PER_TURN = 8
#: Longest the thread sleeps with nothing due (it wakes on any socket or event).
IDLE_WAIT_S = 1.0

_LISTEN = "listen"
_WAKE = "wake"


class ControlSocketError(RuntimeError):
    """The control socket cannot be created (in use, not a socket, no permission)."""


@dataclass
class ServerStats:
    """Counters for tests and the benchmark (written by the server thread only)."""

    accepted: int = 0
    rejected_full: int = 0
    dropped_slow: int = 0
    requests: int = 0
    errors: int = 0
    throttled: int = 0


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    fd: int
    peer: str
    tokens: float
    refilled: float
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    discarding: bool = False  # inside an over-long line: drop bytes up to its newline
    paused_until: float | None = None  # out of tokens: not read until then
    hz: float | None = None
    events: bool = False
    next_due: float = 0.0
    seq: int = 0
    mask: int = 0
    closed: bool = False


class ControlServer:
    """Serves the control protocol for ``supervisor`` on the Unix socket ``path``.

    :meth:`open` creates the socket (so errors surface at start-up); :meth:`start`
    opens if needed and starts :attr:`thread`. The daemon opens it early and starts
    the thread together with its other threads, once the control loop is running.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        path: str | os.PathLike[str],
        clock: Clock | None = None,
        *,
        max_clients: int = MAX_CLIENTS,
        out_limit: int = OUT_LIMIT_BYTES,
        sndbuf: int | None = SNDBUF_BYTES,
        requests_per_s: float = REQUESTS_PER_S,
        burst: float = REQUEST_BURST,
        group: str = SOCKET_GROUP,
        link: Callable[[], Mapping[str, Any]] | None = None,
        runner: SessionRunner | None = None,
    ) -> None:
        """``link`` describes the firmware link for the status (``SerialTransport``'s
        ``describe``; None: no link); ``runner`` serves the guided sessions and pain
        scores (None: those commands are refused)."""
        self.supervisor = supervisor
        self._link = link
        self._runner = runner
        self.path = Path(path)
        self._clock = clock or RealClock()
        self._max_clients = max_clients
        self._out_limit = out_limit
        self._sndbuf = sndbuf
        self._rate = requests_per_s
        self._burst = burst
        self._group = group
        self.stats = ServerStats()
        self.thread = threading.Thread(target=self._serve, name="gunguard-control", daemon=True)
        self._listener: socket.socket | None = None
        self._identity: tuple[int, int] | None = None
        self._sel: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._events: deque[Event] = deque(maxlen=1024)
        self._clients: dict[int, _Client] = {}
        self._stopping = threading.Event()
        self._unsubscribe: object = None
        self._closed = False
        self._close_lock = threading.Lock()
        #: Held around every write to, and the retirement of, the wake-up pipe: a bus
        #: event racing the shutdown must never write into a reused descriptor.
        self._wake_lock = threading.Lock()

    # -- life cycle ------------------------------------------------------------------------
    def open(self) -> None:
        """Create, protect and listen on the socket file. Idempotent."""
        if self._listener is not None:
            return
        path = self.path
        _remove_stale(path)
        if not path.parent.is_dir():
            try:
                path.parent.mkdir(parents=True, mode=0o750)
            except OSError as exc:
                raise ControlSocketError(f"cannot create {path.parent}: {exc}") from exc
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            raise ControlSocketError(f"cannot create the control socket {path}: {exc}") from exc
        try:
            st = os.stat(path)
            self._identity = (st.st_dev, st.st_ino)
            # Before listen(): nobody can connect while the mode is still the umask's.
            os.chmod(path, SOCKET_MODE)
            self._set_group(path)
            sock.listen(16)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            self._unlink_if_ours()
            raise ControlSocketError(f"cannot set up the control socket {path}: {exc}") from exc
        self._listener = sock
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(sock, selectors.EVENT_READ, _LISTEN)
        self._sel.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._unsubscribe = self.supervisor.bus.subscribe(self._on_event)
        log.info("control socket listening on %s", path)

    def start(self) -> ControlServer:
        self.open()
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop serving, drop every client, remove the socket file. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._stopping.set()
        unsubscribe = self._unsubscribe
        if callable(unsubscribe):
            unsubscribe()
        if self.thread.is_alive():
            self._wake()
            self.thread.join(timeout=5.0)
            if self.thread.is_alive():
                log.error("control socket thread did not stop within 5 s")
        elif self._listener is not None:
            self._shutdown()

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # -- the event bus side (any thread: must not block) ------------------------------------
    def _on_event(self, event: Event) -> None:
        self._events.append(event)
        self._wake()

    def _wake(self) -> None:
        with self._wake_lock:
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):  # full pipe: a wake-up is pending anyway
                    os.write(self._wake_w, b"!")

    # -- the server thread ------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self._iterate()
                except Exception:
                    log.exception("control socket: unexpected error, carrying on")
                    self._stopping.wait(0.1)
        finally:
            self._shutdown()

    def _iterate(self) -> None:
        assert self._sel is not None
        now = self._clock.monotonic()
        for key, mask in self._sel.select(self._timeout(now)):
            if key.data == _LISTEN:
                self._accept()
            elif key.data == _WAKE:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            else:
                client: _Client = key.data
                if mask & selectors.EVENT_WRITE and not client.closed:
                    self._flush(client)
                if mask & selectors.EVENT_READ and not client.closed:
                    self._read(client)
        now = self._clock.monotonic()
        self._forward_events()
        for client in list(self._clients.values()):
            if client.paused_until is not None and client.paused_until <= now:
                client.paused_until = None
                self._process(client, now)
        self._publish(now)

    def _timeout(self, now: float) -> float:
        due = [now + IDLE_WAIT_S]
        for client in self._clients.values():
            if client.hz is not None:
                due.append(client.next_due)
            if client.paused_until is not None:
                due.append(client.paused_until)
        return max(0.0, min(due) - now)

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: try again on the next wake-up
                log.warning("control socket: accept failed: %s", exc)
                return
            sock.setblocking(False)
            if len(self._clients) >= self._max_clients:
                self.stats.rejected_full += 1
                with contextlib.suppress(OSError):
                    sock.send(
                        encode(
                            ErrorResponse(
                                error=ErrorInfo(
                                    code=TOO_MANY_CLIENTS,
                                    message=f"{self._max_clients} clients connected already",
                                )
                            )
                        )
                    )
                sock.close()
                continue
            if self._sndbuf:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._sndbuf)
            now = self._clock.monotonic()
            client = _Client(sock, sock.fileno(), _peer(sock), tokens=self._burst, refilled=now)
            self._clients[client.fd] = client
            self.stats.accepted += 1
            self._interest(client)
            log.debug("control client connected: %s", client.peer)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._drop(client, f"read failed: {exc}")
            return
        if not data:
            self._drop(client, None)
            return
        client.inbuf += data
        self._process(client, self._clock.monotonic())

    def _process(self, client: _Client, now: float) -> None:
        """Serve the complete lines buffered for ``client`` while it has tokens."""
        client.tokens = min(self._burst, client.tokens + (now - client.refilled) * self._rate)
        client.refilled = now
        buf = client.inbuf
        served = 0
        while not client.closed and client.tokens >= 1.0:
            if served >= LINES_PER_TURN:
                client.paused_until = now  # the rest on the next turn
                break
            newline = buf.find(b"\n")
            if newline < 0:
                if client.discarding:
                    client.tokens -= len(buf) / MAX_LINE_BYTES
                    buf.clear()
                elif len(buf) > MAX_LINE_BYTES:
                    self._reject_long(client)
                    client.discarding = True
                    buf.clear()
                break
            line = bytes(buf[:newline])
            del buf[: newline + 1]
            client.tokens -= 1.0
            served += 1
            if client.discarding:  # the tail of a line already rejected
                client.discarding = False
                continue
            if len(line) > MAX_LINE_BYTES:
                self._reject_long(client)
                continue
            if line.strip():
                self._handle(client, line, now)
        if client.closed:
            return
        if client.tokens < 1.0:
            self.stats.throttled += 1
            client.paused_until = now + (1.0 - client.tokens) / self._rate
        self._interest(client)

    def _reject_long(self, client: _Client) -> None:
        self.stats.errors += 1
        error = RequestError(LINE_TOO_LONG, f"request line longer than {MAX_LINE_BYTES} bytes")
        self._send(client, encode(error.response()))

    def _handle(self, client: _Client, line: bytes, now: float) -> None:
        self.stats.requests += 1
        try:
            request = parse_request(line)
        except RequestError as exc:
            self.stats.errors += 1
            self._send(client, encode(exc.response()))
            return
        try:
            response = self._execute(client, request, now)
        except Exception as exc:
            log.exception("control request %s failed", request.cmd)
            self.stats.errors += 1
            response = ErrorResponse(
                id=request.id,
                cmd=request.cmd,
                error=ErrorInfo(code=INTERNAL, message=f"{type(exc).__name__}: {exc}"),
            )
        self._send(client, encode(response))

    def _execute(
        self, client: _Client, request: Request, now: float
    ) -> (
        StatusResponse
        | SelectRegionResponse
        | ResetResponse
        | StopResponse
        | SubscribeResponse
        | SessionResponse
        | PainResponse
        | ErrorResponse
    ):
        sup = self.supervisor
        if isinstance(request, StatusRequest):
            return StatusResponse(id=request.id, status=self._status())
        if isinstance(request, SelectRegionRequest):
            log.info("control: select region %s (%s)", request.region, client.peer)
            refusal = sup.select_region(request.region)
            if refusal is None:
                return SelectRegionResponse(id=request.id, region=request.region)
            until = None
            if refusal.until is not None:
                until = dt.datetime.fromtimestamp(refusal.until, dt.UTC).isoformat()
            return ErrorResponse(
                id=request.id,
                cmd=request.cmd,
                error=ErrorInfo(
                    code=REFUSED,
                    message=refusal.detail,
                    reason=refusal.reason,
                    region=refusal.region,
                    until=until,
                ),
            )
        if isinstance(request, ResetRequest):
            cleared = sup.reset()
            log.info(
                "control: reset, %s (%s)",
                f"cleared {', '.join(cleared)}" if cleared else "nothing latched",
                client.peer,
            )
            return ResetResponse(
                id=request.id, cleared=cleared[0] if cleared else None, reasons=list(cleared)
            )
        if isinstance(request, StopRequest):
            log.info("control: stop (%s)", client.peer)
            sup.stop()
            return StopResponse(id=request.id)
        if isinstance(request, SubscribeRequest):
            client.hz = request.hz
            client.events = request.events
            client.next_due = now  # the first status right after the acknowledgement
            return SubscribeResponse(id=request.id, hz=request.hz, events=request.events)
        if isinstance(request, SessionRequest):
            return self._session(client, request)
        if isinstance(request, PainRequest):
            return self._pain(client, request)
        raise AssertionError(f"unhandled request {request!r}")  # pragma: no cover

    def _status(self) -> Any:
        runner = self._runner
        view = None if runner is None else lambda: _view_dict(runner)
        return build_status(self.supervisor, self._link, view)

    def _session(self, client: _Client, request: SessionRequest) -> SessionResponse | ErrorResponse:
        """``session start|next|stop`` (a plan named with start is adopted first)."""
        runner = self._runner
        if runner is None:
            return _refused(request, "no_sessions", "this daemon runs no guided sessions")
        log.info("control: session %s (%s)", request.action, client.peer)
        adopted = None
        source = f"socket ({client.peer})"
        try:
            if request.plan is not None:
                if request.action != "start":
                    return ErrorResponse(
                        id=request.id,
                        cmd=request.cmd,
                        error=ErrorInfo(code=BAD_REQUEST, message="plan goes with start only"),
                    )
                adopted = runner.adopt(load_plan(request.plan)).name
            if request.action == "start":
                view = runner.start(source)
            elif request.action == "next":
                view = runner.next(source)
            else:
                runner.stop(source)
                view = None
        except ConfigError as exc:
            problems = "; ".join(str(p) for p in exc.problems)
            return ErrorResponse(
                id=request.id,
                cmd=request.cmd,
                error=ErrorInfo(code=INVALID_PLAN, message=f"the plan cannot be used: {problems}"),
            )
        except SessionRefused as exc:
            return _refused(request, exc.reason, exc.message, exc.until)
        return SessionResponse(
            id=request.id,
            action=request.action,
            session=None if view is None else SessionStatus.model_validate(view.as_dict()),
            plan=adopted,
        )

    def _pain(self, client: _Client, request: PainRequest) -> PainResponse | ErrorResponse:
        runner = self._runner
        if runner is None:
            return _refused(request, "no_sessions", "this daemon records no pain scores")
        try:
            record = runner.pain(request.value, request.when, f"socket ({client.peer})")
        except ValueError as exc:
            return ErrorResponse(
                id=request.id, cmd=request.cmd, error=ErrorInfo(code=BAD_REQUEST, message=str(exc))
            )
        except SessionRefused as exc:
            return _refused(request, exc.reason, exc.message, exc.until)
        return PainResponse(
            id=request.id,
            value=record.value,
            when=record.timing,  # type: ignore[arg-type]
            session=record.session_id,
        )

    def _forward_events(self) -> None:
        while self._events:
            event = self._events.popleft()
            listeners = [c for c in self._clients.values() if c.events and c.hz is not None]
            if not listeners:
                continue
            body = json.dumps(event.as_dict(), separators=(",", ":"), default=str)
            line = b'{"ok":true,"stream":"event","event":%s}\n' % body.encode()
            for client in listeners:
                self._send(client, line)

    def _publish(self, now: float) -> None:
        due = [c for c in self._clients.values() if c.hz is not None and c.next_due <= now]
        if not due:
            return
        status = self._status().model_dump_json().encode()
        for client in due:
            client.seq += 1
            self._send(
                client,
                b'{"ok":true,"stream":"status","seq":%d,"status":%s}\n' % (client.seq, status),
            )
            assert client.hz is not None
            period = 1.0 / client.hz
            client.next_due += period
            if client.next_due <= now:  # fell behind: no burst to catch up
                client.next_due = now + period

    # -- output ---------------------------------------------------------------------------------
    def _send(self, client: _Client, data: bytes) -> None:
        if client.closed:
            return
        if len(client.outbuf) + len(data) > self._out_limit:
            self.stats.dropped_slow += 1
            self._drop(client, f"not reading: {len(client.outbuf)} bytes queued")
            return
        client.outbuf += data
        self._flush(client)

    def _flush(self, client: _Client) -> None:
        while client.outbuf:
            try:
                sent = client.sock.send(client.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._drop(client, None if isinstance(exc, BrokenPipeError) else str(exc))
                return
            del client.outbuf[:sent]
        self._interest(client)

    def _interest(self, client: _Client) -> None:
        """Read unless throttled; write while output is queued."""
        if client.closed or self._sel is None:
            return
        mask = 0
        if client.paused_until is None:
            mask |= selectors.EVENT_READ
        if client.outbuf:
            mask |= selectors.EVENT_WRITE
        if mask == client.mask:
            return
        if client.mask == 0:
            self._sel.register(client.sock, mask, client)
        elif mask == 0:
            self._sel.unregister(client.sock)
        else:
            self._sel.modify(client.sock, mask, client)
        client.mask = mask

    def _drop(self, client: _Client, why: str | None) -> None:
        if client.closed:
            return
        client.closed = True
        if client.mask and self._sel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(client.sock)
        client.mask = 0
        self._clients.pop(client.fd, None)
        client.sock.close()
        if why is None:
            log.debug("control client disconnected: %s", client.peer)
        else:
            log.warning("control client dropped (%s): %s", client.peer, why)

    # -- shutting down ----------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Listener first (so a reconnect fails: the daemon is gone), then the clients."""
        if self._listener is not None:
            if self._sel is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None
            self._unlink_if_ours()
        for client in list(self._clients.values()):
            self._drop(client, None)
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        with self._wake_lock:
            fds = (self._wake_r, self._wake_w)
            self._wake_r = self._wake_w = -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        log.info("control socket closed")

    def _unlink_if_ours(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == self._identity:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def _set_group(self, path: Path) -> None:
        try:
            gid = grp.getgrnam(self._group).gr_gid
        except KeyError:
            log.info("no %r group here: the control socket keeps its owner's group", self._group)
            return
        if os.stat(path).st_gid == gid:
            return  # already (the unit's Group=): no chown, which its syscall filter forbids
        try:
            os.chown(path, -1, gid)
        except OSError as exc:
            log.warning("cannot give the control socket to group %s: %s", self._group, exc)


def _view_dict(runner: SessionRunner) -> dict[str, Any] | None:
    view = runner.view()
    return None if view is None else view.as_dict()


def _refused(
    request: SessionRequest | PainRequest, reason: str, message: str, until: float | None = None
) -> ErrorResponse:
    when = None if until is None else dt.datetime.fromtimestamp(until, dt.UTC).isoformat()
    return ErrorResponse(
        id=request.id,
        cmd=request.cmd,
        error=ErrorInfo(code=REFUSED, message=message, reason=reason, until=when),
    )


def _remove_stale(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlSocketError(f"{path} exists and is not a socket: not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        log.info("removed the stale control socket %s", path)
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ControlSocketError(f"cannot tell whether {path} is in use: {exc}") from exc
    finally:
        probe.close()
    raise ControlSocketError(
        f"another process is listening on {path}: is gunguard already running?"
    )


def _peer(sock: socket.socket) -> str:
    """``pid 123 uid 1000``: who sent a command, for the log."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", creds)
    except OSError:
        return f"fd {sock.fileno()}"
    return f"pid {pid} uid {uid}"


def daemon_socket_path(
    cfg: GunguardConfig, override: str | None, *, simulated: bool
) -> Path | None:
    """Where ``gunguard run`` listens: ``--control-socket``, else the configured or
    default path; a simulated gun gets a socket only when one is asked for, so a
    simulation never collides with the real daemon's."""
    if override is not None:
        return Path(override).absolute()  # lgpio may change the working directory later
    if simulated and cfg.control_socket.path is None:
        return None
    return socket_path(cfg)
