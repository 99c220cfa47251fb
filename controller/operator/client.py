"""Client commands over the control socket: status, region, reset, stop, session, pain (and
watch's link).

Each command is one short connection: connect, one request, one answer. The socket
is found from ``--socket PATH``, else ``--config FILE``'s ``control_socket.path``,
else ``$GUNGUARD_SOCKET``, else ``control.sock`` in ``$RUNTIME_DIRECTORY`` or
/run/gunguard (where the installed service listens).

Exit status: 0 done; 1 the daemon said no (a refused region, an invalid request);
2 invalid ``--config``; 4 no daemon to talk to (not running, no permission, an
answer that is not the protocol).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from gunguard.config import loader as configfile
from gunguard.config.loader import ConfigError
from gunguard.core.exits import Exit
from gunguard.operator.advice import advice
from gunguard.operator.protocol import (
    ErrorResponse,
    EventUpdate,
    PainResponse,
    ProtocolError,
    RegionStatus,
    ResetResponse,
    Response,
    SelectRegionResponse,
    SessionResponse,
    SessionStatus,
    Status,
    StatusResponse,
    StatusUpdate,
    encode_request,
    parse_response,
    socket_path,
)
from gunguard.operator.units import BandUse, band_label, bands_text, mmss, percent

EXIT_OK, EXIT_NO, EXIT_CONFIG, EXIT_UNREACHABLE = Exit.OK, Exit.NO, Exit.CONFIG, Exit.UNREACHABLE
SOCKET_ENV = "GUNGUARD_SOCKET"
DEFAULT_TIMEOUT_S = 5.0
#: A status line is a few kB; anything far longer is not the protocol.
MAX_RESPONSE_BYTES = 1024 * 1024


class ClientError(Exception):
    """A command that cannot complete; ``exit_code`` for the shell."""

    def __init__(self, message: str, exit_code: int = EXIT_UNREACHABLE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Unreachable(ClientError):
    """No daemon to talk to at the socket."""


class Disconnected(ClientError):
    """The daemon closed the connection (it stopped, or dropped a slow client)."""


def describe_connect_error(exc: OSError, path: Path, timeout: float) -> str:
    """What a failed connect means for the person at the keyboard."""
    if isinstance(exc, FileNotFoundError):
        return (
            f"no control socket at {path}: is gunguard running? "
            "(systemctl status gunguard; or give --socket PATH or --config FILE)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing is listening on {path}: gunguard is not running (a stale socket file)"
    if isinstance(exc, PermissionError):
        return (
            f"no permission to use {path}: add your user to the gunguard group "
            "(sudo usermod -aG gunguard $USER, then log in again)"
        )
    if isinstance(exc, TimeoutError):
        return f"the daemon at {path} did not answer within {timeout:g} s"
    return f"cannot connect to {path}: {exc.strerror or exc}"


class Connection:
    """One connection to the daemon: requests, answers and a subscription's stream."""

    def __init__(self, sock: socket.socket, path: Path, timeout: float) -> None:
        self.sock = sock
        self.path = path
        self.timeout = timeout
        self._buf = bytearray()
        self._pending: deque[Response] = deque()
        self._eof = False

    @classmethod
    def open(
        cls, path: Path, *, timeout: float = DEFAULT_TIMEOUT_S, wait: float = 0.0
    ) -> Connection:
        """Connect; with ``wait``, keep trying that long while the daemon starts up."""
        deadline = time.monotonic() + wait
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(str(path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                if time.monotonic() >= deadline:
                    raise Unreachable(describe_connect_error(exc, path, timeout)) from None
                time.sleep(0.1)
            except OSError as exc:
                sock.close()
                raise Unreachable(describe_connect_error(exc, path, timeout)) from None
            else:
                return cls(sock, path, timeout)

    @property
    def buffered(self) -> bool:
        """Lines already received but not yet returned (select() would not see them)."""
        return bool(self._pending) or b"\n" in self._buf

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, cmd: str, **fields: Any) -> None:
        try:
            self.sock.sendall(encode_request(cmd, **fields))
        except OSError as exc:
            raise Disconnected(f"lost the daemon at {self.path}: {exc}") from None

    def _take_lines(self) -> list[Response]:
        out: list[Response] = []
        while True:
            newline = self._buf.find(b"\n")
            if newline < 0:
                if len(self._buf) > MAX_RESPONSE_BYTES:
                    raise ClientError(f"the daemon at {self.path} sent an over-long line")
                return out
            line = bytes(self._buf[:newline])
            del self._buf[: newline + 1]
            try:
                out.append(parse_response(line))
            except ProtocolError as exc:
                raise ClientError(str(exc)) from None

    def read_available(self) -> list[Response]:
        """Every complete line received so far, without blocking for more.

        Raises :class:`Disconnected` once the daemon has closed the connection and
        everything it sent before has been returned.
        """
        # Non-blocking for real: with a timeout set, Python would wait for more data.
        self.sock.settimeout(0.0)
        try:
            while not self._eof and len(self._buf) <= MAX_RESPONSE_BYTES:
                try:
                    data = self.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    raise Disconnected(f"lost the daemon at {self.path}: {exc}") from None
                if not data:
                    self._eof = True
                    break
                self._buf += data
                self._pending.extend(self._take_lines())
        finally:
            self.sock.settimeout(self.timeout)
        lines = [*self._pending, *self._take_lines()]
        self._pending.clear()
        if not lines and self._eof:
            raise Disconnected(f"the daemon at {self.path} closed the connection")
        return lines

    def next(self) -> Response:
        """The next line, waiting up to the timeout for it."""
        while True:
            if not self._pending:
                self._pending.extend(self._take_lines())
            if self._pending:
                return self._pending.popleft()
            if self._eof:
                raise Disconnected(f"the daemon at {self.path} closed the connection")
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise ClientError(
                    f"the daemon at {self.path} did not answer within {self.timeout:g} s"
                ) from None
            except OSError as exc:
                raise Disconnected(f"lost the daemon at {self.path}: {exc}") from None
            if not data:
                self._eof = True
            self._buf += data

    def request(self, cmd: str, **fields: Any) -> Response:
        """Send one request and return its answer (stream lines in between are skipped)."""
        self.send(cmd, **fields)
        while True:
            response = self.next()
            if not isinstance(response, StatusUpdate | EventUpdate):
                return response


# -- finding the socket ------------------------------------------------------------------
def add_socket_options(parser: argparse.ArgumentParser) -> None:
    """``--socket`` / ``--config`` / ``--timeout`` for every client command."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", metavar="PATH", help="the daemon's control socket")
    where.add_argument(
        "--config", metavar="FILE", help="find the socket from this config (control_socket.path)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for an answer (default {DEFAULT_TIMEOUT_S:g})",
    )


def resolve_socket(args: argparse.Namespace) -> Path:
    if getattr(args, "socket", None):
        return Path(args.socket)
    if getattr(args, "config", None):
        try:
            cfg = configfile.load(args.config)
        except ConfigError as exc:
            problems = "\n  ".join(str(p) for p in exc.problems)
            raise ClientError(f"invalid configuration:\n  {problems}", EXIT_CONFIG) from None
        return socket_path(cfg)
    env = os.environ.get(SOCKET_ENV)
    if env:
        return Path(env)
    return socket_path(None)


def _one_request(args: argparse.Namespace, cmd: str, **fields: Any) -> Response:
    path = resolve_socket(args)
    with Connection.open(path, timeout=args.timeout) as conn:
        return conn.request(cmd, **fields)


def fail(message: str, code: int) -> int:
    print(f"gunguard: {message}", file=sys.stderr)
    return code


def _daemon_said_no(response: ErrorResponse) -> int:
    error = response.error
    if error.reason is not None and error.region is None:  # a session or pain command
        text = f"{response.cmd or 'request'} refused ({error.reason}): {error.message}"
    elif error.reason is not None:
        text = f"refused {error.region}: {error.reason}: {error.message}"
        if error.until:
            text += f" (allowed from {error.until})"
    else:
        text = f"the daemon answered {error.code}: {error.message}"
    return fail(text, EXIT_NO)


def _run(func: Any, args: argparse.Namespace) -> int:
    try:
        return int(func(args))
    except ClientError as exc:
        return fail(str(exc), exc.exit_code)


# -- formatting ------------------------------------------------------------------------------
def time_left(region: RegionStatus) -> str:
    """``1:28 at <= 3200 ppm`` at the band the rate is in now, else ``4:33`` (the lowest
    band's): what the dashboard and ``gunguard status`` both show."""
    left = mmss(region.seconds_left)
    if region.band_now is not None:
        left += f" at {band_label(region.bands[region.band_now].up_to_ppm)}"
    return left


def region_bands(region: RegionStatus) -> list[BandUse]:
    """The region's config bands: contact used in each, and the time each allows."""
    out = []
    for i, band in enumerate(region.bands):
        used = region.seconds_by_band[i] if i < len(region.seconds_by_band) else 0.0
        out.append(BandUse(band_label(band.up_to_ppm), band.up_to_ppm, used, band.max_seconds))
    return out


def format_status(status: Status) -> list[str]:
    """``gunguard status`` for people."""
    power = "ON" if status.power_on else "off"
    head = f"gunguard: {status.state.upper()}"
    if status.region:
        head += f"  {status.region}"
    lines = [f"{head}  motor power {power}"]
    if status.cap_ppm is not None:
        region = status.regions.get(status.region or "")
        trips = f" (trips above {region.trip_ppm:.0f})" if region else ""
        lines.append(f"  rate   {status.rate_ppm:6.0f} ppm   cap {status.cap_ppm:g} ppm{trips}")
    else:
        lines.append(f"  rate   {status.rate_ppm:6.0f} ppm   (no region armed)")
    limit = status.max_force_n if status.max_force_n is not None else status.limit_force_n
    lines.append(f"  force  {status.force_n:6.1f} N     max {limit:g} N")
    if status.trip is not None:
        lines.append(f"  TRIP   {status.trip.reason}: {status.trip.detail}")
        lines.append(f"         power is off. {advice(status.trip.reason)}")
    lines.append(f"  {'region':<18} {'used':>7}  {'left':<19}  contact by band: used / allowed")
    for name, region in status.regions.items():
        mark = "*" if name == status.region else " "
        lines.append(
            f"{mark} {name:<18} {percent(region.dose):>7}  {time_left(region):<19}  "
            f"{bands_text(region_bands(region))}"
        )
    if status.not_allowed:
        lines.append(f"  not allowed: {', '.join(status.not_allowed)}")
    if status.session is not None:
        lines.append(f"  session {session_line(status.session)}")
    link = status.link
    if link is not None:
        firmware = f" {link.firmware_id!r}" if link.firmware_id else ""
        lines.append(f"  link   {link.state} on {link.port}{firmware}")
        bad = ", ".join(f"{reason} {n}" for reason, n in link.errors.items() if n)
        lines.append(
            f"         frames ok {link.frames_ok}, bad {link.frames_bad}"
            f"{f' ({bad})' if bad else ''}, lost {link.frames_lost}, "
            f"resent {link.commands_resent}, silences {link.silences}"
        )
    return lines


# -- the commands ----------------------------------------------------------------------------
def _status(args: argparse.Namespace) -> int:
    response = _one_request(args, "status")
    if isinstance(response, ErrorResponse):
        return _daemon_said_no(response)
    assert isinstance(response, StatusResponse)
    if args.json:
        print(response.status.model_dump_json(indent=2))
    else:
        print("\n".join(format_status(response.status)))
    return EXIT_OK


#: How long ``gunguard region`` watches a selection before it says what happened: the
#: gun spins up within half a second, and an overspeed trips two pulses after that.
SELECT_SETTLE_S = 1.0
_SETTLE_POLL_S = 0.05


def _settled(conn: Connection, region: str, settle_s: float) -> Status:
    """The status once the selection has had time to trip, or at its first trip."""
    end = time.monotonic() + settle_s
    while True:
        response = conn.request("status")
        if isinstance(response, ErrorResponse):
            error = response.error
            raise ClientError(f"the daemon answered {error.code}: {error.message}")
        assert isinstance(response, StatusResponse)
        status = response.status
        if status.trip is not None or status.region != region or time.monotonic() >= end:
            return status
        time.sleep(_SETTLE_POLL_S)


def _region(args: argparse.Namespace) -> int:
    """Select, then say what actually happened: armed, tripped at once, or no longer."""
    path = resolve_socket(args)
    with Connection.open(path, timeout=args.timeout) as conn:
        response = conn.request("select_region", region=args.name)
        if isinstance(response, ErrorResponse):
            return _daemon_said_no(response)
        assert isinstance(response, SelectRegionResponse)
        status = _settled(conn, args.name, SELECT_SETTLE_S)
    if status.trip is not None:
        print(
            f"{args.name} was selected, then tripped at once: {status.trip.reason}: "
            f"{status.trip.detail}. Motor power is off. {advice(status.trip.reason)}"
        )
        return EXIT_NO
    if status.region != args.name or not status.power_on:
        now = status.region or "no region"
        print(f"{args.name} was selected, but is no longer armed ({now}, motor power off)")
        return EXIT_NO
    print(f"{args.name} armed: the motor has power (rate {status.rate_ppm:.0f} ppm)")
    return EXIT_OK


def reset_text(response: ResetResponse) -> str:
    """What a reset did, naming every reason it cleared."""
    reasons = response.reasons or ([response.cleared] if response.cleared else [])
    if not reasons:
        return "no trip latched: nothing to reset"
    plural = "s" if len(reasons) > 1 else ""
    return f"cleared trip{plural} {', '.join(reasons)}: power stays off until a region is selected"


def _reset(args: argparse.Namespace) -> int:
    response = _one_request(args, "reset")
    if isinstance(response, ErrorResponse):
        return _daemon_said_no(response)
    assert isinstance(response, ResetResponse)
    print(reset_text(response))
    return EXIT_OK


def _stop(args: argparse.Namespace) -> int:
    response = _one_request(args, "stop")
    if isinstance(response, ErrorResponse):
        return _daemon_said_no(response)
    print("stopped: no region selected, motor power off")
    return EXIT_OK


def session_line(session: SessionStatus) -> str:
    """The guided session in one line, for people."""
    low, high = session.rate_min_ppm, session.rate_max_ppm
    head = (
        f"{session.plan}, phase {session.phase} ({session.phase_name}), step {session.step}/"
        f"{session.steps}: {session.region} {mmss(session.done_s)} of "
        f"{mmss(session.target_s)} at {low:g}-{high:g} ppm"
    )
    state = {
        "arming": "asking for the region",
        "active": "armed",
        "target": "target reached: confirm to move on (gunguard session next, or a long press)",
        "refused": f"REFUSED ({session.detail}): nothing else is armed; "
        "session next skips the step, session start asks again",
        "paused": f"paused ({session.detail}): session start resumes, session next skips",
    }[session.state]
    return f"{head}: {state}"


#: How long ``gunguard session start|next`` waits for the supervisor's answer.
SESSION_SETTLE_S = 2.0


def _session_settled(conn: Connection, settle_s: float) -> SessionStatus | None:
    """The session once its step is armed, refused or tripped (or after ``settle_s``)."""
    end = time.monotonic() + settle_s
    while True:
        response = conn.request("status")
        if isinstance(response, ErrorResponse):
            error = response.error
            raise ClientError(f"the daemon answered {error.code}: {error.message}")
        assert isinstance(response, StatusResponse)
        session = response.status.session
        if session is None or session.state != "arming" or time.monotonic() >= end:
            return session
        time.sleep(_SETTLE_POLL_S)


def _session(args: argparse.Namespace) -> int:
    """``gunguard session start|next|stop``: what the daemon did with the step's region."""
    fields: dict[str, Any] = {"action": args.action}
    plan = getattr(args, "plan", None)
    if plan is not None:
        if args.action != "start":
            return fail("--plan goes with session start", EXIT_CONFIG)
        from gunguard.config.loader import error_lines
        from gunguard.plan.files import load_plan

        try:
            loaded = load_plan(plan)  # checked here first: every problem, with line and key
        except ConfigError as exc:
            print("\n".join(error_lines(exc, "plan")), file=sys.stderr)
            return EXIT_CONFIG
        fields["plan"] = str(Path(loaded.source).resolve())
    path = resolve_socket(args)
    with Connection.open(path, timeout=args.timeout) as conn:
        response = conn.request("session", **fields)
        if isinstance(response, ErrorResponse):
            return _daemon_said_no(response)
        assert isinstance(response, SessionResponse)
        if response.plan:
            print(f"adopted plan {response.plan}")
        if response.session is None:
            print(
                "session completed: the region is disarmed"
                if args.action == "next"
                else "session stopped: the region is disarmed"
            )
            return EXIT_OK
        session = _session_settled(conn, SESSION_SETTLE_S)
    if session is None:
        print("the session ended")
        return EXIT_OK
    print(session_line(session))
    if session.state == "active":
        print(f"  {session.cue}")
        print(
            f"  intensity: comfortably uncomfortable, {session.intensity[0]}-"
            f"{session.intensity[1]} out of 10"
        )
    return EXIT_NO if session.state in ("refused", "paused") else EXIT_OK


def _pain(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"value": args.value}
    if args.when is not None:
        fields["when"] = args.when
    response = _one_request(args, "pain", **fields)
    if isinstance(response, ErrorResponse):
        return _daemon_said_no(response)
    assert isinstance(response, PainResponse)
    belongs = f"session {response.session}" if response.session is not None else "no session"
    print(f"pain {response.value}/10 ({response.when}) recorded: {belongs}")
    return EXIT_OK


def pain_value(text: str) -> int:
    """argparse type: a whole number from 0 to 10."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 10 or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(
            f"pain is a whole number from 0 (none) to 10 (the worst imaginable): got {text!r}"
        )
    return value


def cmd_session(args: argparse.Namespace) -> int:
    return _run(_session, args)


def cmd_pain(args: argparse.Namespace) -> int:
    return _run(_pain, args)


def cmd_status(args: argparse.Namespace) -> int:
    return _run(_status, args)


def cmd_region(args: argparse.Namespace) -> int:
    return _run(_region, args)


def cmd_reset(args: argparse.Namespace) -> int:
    return _run(_reset, args)


def cmd_stop(args: argparse.Namespace) -> int:
    return _run(_stop, args)


def request_quietly(path: Path, cmd: str, timeout: float = DEFAULT_TIMEOUT_S, **fields: Any) -> str:
    """One request for the dashboard's keys: a one-line outcome, never an exception."""
    what = " ".join([cmd, *(str(v) for v in fields.values())])
    try:
        with Connection.open(path, timeout=timeout) as conn:
            response = conn.request(cmd, **fields)
    except ClientError as exc:
        return f"{what} failed: {exc}"
    if isinstance(response, ErrorResponse):
        return f"{what}: {response.error.code}: {response.error.message}"
    if isinstance(response, SessionResponse):
        if response.session is None:
            return f"{what}: the session ended"
        return f"{what}: step {response.session.step} {response.session.region}"
    if isinstance(response, ResetResponse):
        reasons = response.reasons or ([response.cleared] if response.cleared else [])
        if not reasons:
            return "reset: no trip latched"
        return f"reset: cleared {', '.join(reasons)}"
    return f"{cmd}: done"
