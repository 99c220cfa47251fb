"""The control socket's protocol: newline-delimited JSON, one object per line.

Requests are validated with pydantic (a discriminated union on ``cmd``); anything
else gets an error line, never a crash. Every response carries ``ok``; errors are
``{"ok": false, "error": {"code": ..., "message": ...}}``. Requests may carry an
``id`` (string or integer) that is echoed in the response, so a client that
pipelines requests can pair the answers.

Requests::

    {"cmd": "status"}
    {"cmd": "select_region", "region": "calf-left"}     # null deselects
    {"cmd": "reset"}
    {"cmd": "stop"}                                      # disarm (not a trip)
    {"cmd": "subscribe", "hz": 10, "events": true}        # 1-50 Hz status stream
    {"cmd": "session", "action": "start"}                # guided session: start|next|stop
    {"cmd": "session", "action": "start", "plan": "/abs/plan.yaml"}   # adopt, then start
    {"cmd": "pain", "value": 3, "when": "after"}          # a pain score, 0-10

Responses echo ``cmd``; a subscription then streams
``{"ok": true, "stream": "status", "seq": N, "status": {...}}`` at the requested
rate and, with ``events``, every supervisor event as
``{"ok": true, "stream": "event", "event": {...}}`` as it happens.

The status payload is built here from :meth:`Supervisor.snapshot` plus the region
limits, so the dashboard, ``gunguard status`` and the physical controls all read the
same numbers the supervisor judges against.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

if TYPE_CHECKING:
    from gunguard.config.schema import GunguardConfig
    from gunguard.core.supervisor import Supervisor

PROTOCOL_VERSION = 1
#: A request line longer than this (newline excluded) is rejected unread.
MAX_LINE_BYTES = 4096
MIN_HZ, MAX_HZ = 1.0, 50.0
DEFAULT_RUNTIME_DIR = "/run/gunguard"
SOCKET_NAME = "control.sock"

# Error codes (the ``error.code`` of a response).
BAD_JSON = "bad_json"
BAD_REQUEST = "bad_request"
UNKNOWN_COMMAND = "unknown_command"
LINE_TOO_LONG = "line_too_long"
REFUSED = "refused"
INVALID_PLAN = "invalid_plan"
TOO_MANY_CLIENTS = "too_many_clients"
INTERNAL = "internal_error"
ERROR_CODES = frozenset(
    {
        BAD_JSON,
        BAD_REQUEST,
        UNKNOWN_COMMAND,
        LINE_TOO_LONG,
        REFUSED,
        INVALID_PLAN,
        TOO_MANY_CLIENTS,
        INTERNAL,
    }
)

RequestId = Annotated[str, Field(max_length=64)] | int | None
RegionName = Annotated[str, Field(min_length=1, max_length=64)]


# -- requests ------------------------------------------------------------------------
class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RequestId = None


class StatusRequest(_Request):
    cmd: Literal["status"]


class SelectRegionRequest(_Request):
    """``region`` is required, so a forgotten name cannot silently mean "deselect"."""

    cmd: Literal["select_region"]
    region: RegionName | None


class ResetRequest(_Request):
    cmd: Literal["reset"]


class StopRequest(_Request):
    cmd: Literal["stop"]


class SubscribeRequest(_Request):
    cmd: Literal["subscribe"]
    hz: Annotated[float, Field(ge=MIN_HZ, le=MAX_HZ)] = 10.0
    events: bool = True


class SessionRequest(_Request):
    """A guided session command; ``plan`` (start only): a plan file the daemon reads, or a
    shipped plan's name, adopted first (gunguard.plan.runner)."""

    cmd: Literal["session"]
    action: Literal["start", "next", "stop"]
    plan: Annotated[str, Field(min_length=1, max_length=1024)] | None = None


class PainRequest(_Request):
    """A pain score on the 0-10 scale; ``when`` may be left out while a session runs."""

    cmd: Literal["pain"]
    value: Annotated[int, Field(ge=0, le=10, strict=True)]
    when: Literal["before", "after", "morning"] | None = None


Request = Annotated[
    StatusRequest
    | SelectRegionRequest
    | ResetRequest
    | StopRequest
    | SubscribeRequest
    | SessionRequest
    | PainRequest,
    Field(discriminator="cmd"),
]
_REQUEST = TypeAdapter(Request)
COMMANDS = ("status", "select_region", "reset", "stop", "subscribe", "session", "pain")


# -- responses -----------------------------------------------------------------------
class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ErrorInfo(_Response):
    code: str
    message: str
    reason: str | None = None  # a refusal's reason code
    region: str | None = None
    until: str | None = None  # a refusal's "allowed from" (ISO 8601, UTC)


class ErrorResponse(_Response):
    ok: Literal[False] = False
    id: RequestId = None
    cmd: str | None = None
    error: ErrorInfo


class BandStatus(_Response):
    up_to_ppm: float
    max_seconds: float


class RegionStatus(_Response):
    """One treatable region: its caps and the treatment in progress.

    Machine units: rates in ppm, force in N, times in seconds, the dose a fraction of
    the treatment's allowance (people see it as a percentage and m:ss:
    :mod:`gunguard.operator.units`).
    """

    cap_ppm: float
    trip_ppm: float
    max_force_n: float
    bands: list[BandStatus]
    started: bool  # a dose has been counted in this daemon's life
    dose: float  # fraction: 1.0 = the whole allowance of one treatment (shown as 100 %)
    contact_seconds: float
    seconds_by_band: list[float]  # contact seconds per entry of ``bands``
    #: Contact seconds left: at the current rate's band while this region is armed and
    #: percussing, else at the lowest (most generous) band.
    seconds_left: float
    band_now: int | None = None


class TripInfo(_Response):
    reason: str
    detail: str


class LinkStatus(_Response):
    """The UART link to the gun's firmware (docs/serial-protocol.md) and its counters,
    all since the daemon started."""

    state: Literal["ok", "silent", "down"]
    port: str
    firmware_id: str | None
    frames_ok: int  # valid frames from the firmware
    frames_bad: int  # frames dropped, the sum of ``errors``
    #: Dropped frames by reason: oversize, cobs, length, crc, type, version, value.
    errors: dict[str, int]
    frames_lost: int  # gaps in the firmware's sequence numbers
    frames_unexpected: int  # valid frames of the Pi's own types (an echo, a loopback)
    version_mismatches: int
    silences: int  # the link went from ok to silent
    frames_sent: int
    commands_sent: int
    commands_resent: int
    releases_failed: int
    buttons_dropped: int
    connects: int
    disconnects: int
    open_failures: int


class SessionStatus(_Response):
    """The guided session in progress (gunguard.plan.runner.SessionView)."""

    plan: str
    patient: str
    session: int
    phase: int
    phase_name: str
    step: int  # 1-based
    steps: int
    region: str
    state: Literal["arming", "active", "target", "refused", "paused"]
    target_s: float
    done_s: float  # contact counted for the step's region while it was armed
    rate_min_ppm: float
    rate_max_ppm: float
    cue: str
    detail: str | None = None  # why refused or paused
    intensity: list[int]  # the "comfortably uncomfortable" target, [4, 6] out of 10


class Status(_Response):
    t: float  # the daemon's monotonic clock
    state: Literal["idle", "armed", "tripped"]
    region: str | None
    power_on: bool
    rate_ppm: float
    force_n: float
    cap_ppm: float | None
    max_force_n: float | None
    trip: TripInfo | None
    hardware_max_ppm: float
    limit_force_n: float  # limits.max_force_n: the bar's scale when no region is armed
    regions: dict[str, RegionStatus]
    not_allowed: list[str] = []
    link: LinkStatus | None = None  # null: no serial: section (no firmware link)
    session: SessionStatus | None = None  # null: no guided session running


class StatusResponse(_Response):
    ok: Literal[True] = True
    id: RequestId = None
    cmd: Literal["status"] = "status"
    status: Status


class SelectRegionResponse(_Response):
    ok: Literal[True] = True
    id: RequestId = None
    cmd: Literal["select_region"] = "select_region"
    region: str | None


class ResetResponse(_Response):
    ok: Literal[True] = True
    id: RequestId = None
    cmd: Literal["reset"] = "reset"
    #: The latched trip's reason that was cleared; None when no trip was latched.
    cleared: str | None
    #: Every reason the reset cleared, the latched one first (a second fault during a
    #: trip is latched too); empty when nothing was latched.
    reasons: list[str] = []


class StopResponse(_Response):
    ok: Literal[True] = True
    id: RequestId = None
    cmd: Literal["stop"] = "stop"


class SubscribeResponse(_Response):
    ok: Literal[True] = True
    id: RequestId = None
    cmd: Literal["subscribe"] = "subscribe"
    hz: float
    events: bool
    protocol: int = PROTOCOL_VERSION


class SessionResponse(_Response):
    ok: Literal[True] = True
    id: RequestId = None
    cmd: Literal["session"] = "session"
    action: Literal["start", "next", "stop"]
    #: The session after the command (null: it ended, completed or stopped).
    session: SessionStatus | None
    plan: str | None = None  # the plan adopted by this command, if any


class PainResponse(_Response):
    ok: Literal[True] = True
    id: RequestId = None
    cmd: Literal["pain"] = "pain"
    value: int
    when: Literal["before", "after", "morning"]
    session: int | None  # the guided session it belongs to (null: none)


class StatusUpdate(_Response):
    ok: Literal[True] = True
    stream: Literal["status"] = "status"
    seq: int
    status: Status


class EventUpdate(_Response):
    ok: Literal[True] = True
    stream: Literal["event"] = "event"
    event: dict[str, Any]


Response = (
    ErrorResponse
    | StatusResponse
    | SelectRegionResponse
    | ResetResponse
    | StopResponse
    | SubscribeResponse
    | SessionResponse
    | PainResponse
    | StatusUpdate
    | EventUpdate
)
_BY_CMD: dict[str, type[_Response]] = {
    "status": StatusResponse,
    "select_region": SelectRegionResponse,
    "reset": ResetResponse,
    "stop": StopResponse,
    "subscribe": SubscribeResponse,
    "session": SessionResponse,
    "pain": PainResponse,
}
_BY_STREAM: dict[str, type[_Response]] = {"status": StatusUpdate, "event": EventUpdate}


class ProtocolError(ValueError):
    """A line from the daemon that is not a valid response (version skew, a bug)."""


class RequestError(ValueError):
    """A request line that cannot be served: carries the error response to send."""

    def __init__(
        self, code: str, message: str, request_id: RequestId = None, cmd: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.cmd = cmd

    def response(self) -> ErrorResponse:
        return ErrorResponse(
            id=self.request_id, cmd=self.cmd, error=ErrorInfo(code=self.code, message=self.message)
        )


# -- parsing ---------------------------------------------------------------------------
def parse_request(line: bytes | str) -> Request:
    """Validate one request line (newline stripped); raises :class:`RequestError`."""
    raw = line.encode() if isinstance(line, str) else bytes(line)
    if len(raw) > MAX_LINE_BYTES:
        raise RequestError(LINE_TOO_LONG, f"request longer than {MAX_LINE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RequestError(BAD_JSON, f"not a JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(BAD_JSON, 'a request is a JSON object, e.g. {"cmd": "status"}')
    request_id = data.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        request_id = None  # echo only a usable id; validation below reports a bad one
    elif isinstance(request_id, str) and len(request_id) > 64:
        request_id = None
    cmd = data.get("cmd")
    if not isinstance(cmd, str):
        raise RequestError(BAD_REQUEST, 'missing "cmd" (a string)', request_id)
    if cmd not in COMMANDS:
        raise RequestError(
            UNKNOWN_COMMAND,
            f"unknown cmd {cmd[:40]!r}; one of {', '.join(COMMANDS)}",
            request_id,
        )
    try:
        return _REQUEST.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'request'}: {err['msg']}"
            for err in exc.errors()
        )
        raise RequestError(BAD_REQUEST, f"{cmd}: {problems}", request_id, cmd) from None


def parse_response(line: bytes | str) -> Response:
    """Validate one line from the daemon; raises :class:`ProtocolError`."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"the daemon sent something that is not JSON: {exc}") from None
    if not isinstance(data, dict) or "ok" not in data:
        raise ProtocolError(f"the daemon sent an unexpected line: {str(line)[:200]}")
    try:
        if data["ok"] is False:
            return ErrorResponse.model_validate(data)
        table, key = (_BY_STREAM, "stream") if "stream" in data else (_BY_CMD, "cmd")
        model = table.get(str(data.get(key)))
        if model is None:
            raise ProtocolError(f"the daemon sent an unknown response: {str(line)[:200]}")
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        raise ProtocolError(f"the daemon sent an invalid response: {exc}") from None


def encode(response: _Response) -> bytes:
    """One response as a line (compact JSON, newline-terminated; errors without nulls)."""
    exclude_none = isinstance(response, ErrorResponse)
    return response.model_dump_json(exclude_none=exclude_none).encode() + b"\n"


def encode_request(cmd: str, **fields: Any) -> bytes:
    return json.dumps({"cmd": cmd, **fields}, separators=(",", ":")).encode() + b"\n"


# -- the status payload ----------------------------------------------------------------
def link_status(described: Mapping[str, Any]) -> LinkStatus:
    """:class:`LinkStatus` from ``SerialTransport.describe()`` (``bad_*`` → ``errors``)."""
    errors = {k[4:]: int(v) for k, v in described.items() if k.startswith("bad_")}
    rest = {k: v for k, v in described.items() if not k.startswith("bad_")}
    return LinkStatus.model_validate({**rest, "errors": errors})


def build_status(
    supervisor: Supervisor,
    link: Callable[[], Mapping[str, Any]] | None = None,
    session: Callable[[], Mapping[str, Any] | None] | None = None,
) -> Status:
    """The operator's view, from one consistent snapshot plus the region limits.

    ``link`` describes the firmware link (``SerialTransport.describe``), if there is one;
    ``session`` the guided session (``SessionRunner.view``), if one runs.
    """
    from gunguard.core.dose import bucket_of  # (the daemon's side only: clients stay light)

    snap = supervisor.snapshot()
    limits = supervisor.limits  # replaced whole on reload, so one read is consistent
    regions: dict[str, RegionStatus] = {}
    not_allowed: list[str] = []
    for name, lim in limits.regions.items():
        if not lim.allowed:
            not_allowed.append(name)
            continue
        summary = snap.doses.get(name)
        dose = float(summary["dose"]) if summary else 0.0
        by_band = [float(s) for s in summary["seconds_by_band"]] if summary else []
        band_now = None
        if snap.region == name and snap.rate_ppm > 0.0:
            band_now = lim.band_index(snap.rate_ppm)
        # Time left at the rate now, or at the first band's rate while not percussing.
        scale = lim.allowance[
            bucket_of(snap.rate_ppm if band_now is not None else lim.bands[0].up_to_ppm)
        ]
        regions[name] = RegionStatus(
            cap_ppm=lim.cap_ppm,
            trip_ppm=round(lim.trip_ppm, 3),
            max_force_n=lim.max_force_n,
            bands=[BandStatus(up_to_ppm=b.up_to_ppm, max_seconds=b.max_seconds) for b in lim.bands],
            started=summary is not None,
            dose=dose,
            contact_seconds=float(summary["contact_seconds"]) if summary else 0.0,
            seconds_by_band=by_band or [0.0] * len(lim.bands),
            seconds_left=round(max(0.0, 1.0 - dose) * scale, 3),
            band_now=band_now,
        )
    trip = None
    if snap.trip_reason is not None:
        trip = TripInfo(reason=snap.trip_reason, detail=snap.trip_detail or "")
    return Status(
        t=round(snap.t, 6),
        state=snap.state,  # type: ignore[arg-type]
        region=snap.region,
        power_on=snap.power_on,
        rate_ppm=round(snap.rate_ppm, 1),
        force_n=round(snap.force_n, 2),
        cap_ppm=snap.cap_ppm,
        max_force_n=snap.max_force_n,
        trip=trip,
        hardware_max_ppm=limits.hardware_max_ppm,
        limit_force_n=limits.max_force_n,
        regions=regions,
        not_allowed=not_allowed,
        link=None if link is None else link_status(link()),
        session=_session_status(session),
    )


def _session_status(
    session: Callable[[], Mapping[str, Any] | None] | None,
) -> SessionStatus | None:
    described = None if session is None else session()
    return None if described is None else SessionStatus.model_validate(described)


# -- where the socket is -------------------------------------------------------------------
def runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    """systemd's ``$RUNTIME_DIRECTORY`` (its first entry), else /run/gunguard."""
    env = os.environ if environ is None else environ
    value = env.get("RUNTIME_DIRECTORY", "")
    first = value.split(":", 1)[0]
    return Path(first or DEFAULT_RUNTIME_DIR)


def socket_path(
    cfg: GunguardConfig | None = None,
    override: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The control socket: ``override``, else ``control_socket.path`` (relative to the
    runtime directory), else ``control.sock`` in the runtime directory."""
    if override is not None:
        return Path(override)
    configured = cfg.control_socket.path if cfg is not None else None
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_absolute() else runtime_dir(environ) / path
    return runtime_dir(environ) / SOCKET_NAME
