"""Sensor traces: what ``gunguard run --record`` writes and ``simulate --replay`` reads.

A trace is JSON lines (docs/scenarios.md#sensor-traces): a header, then every tach
edge, every change of the raw force reading, the operator's actions as the supervisor
applied them, and the power and trips it decided, each stamped with monotonic seconds
since the recording started.

:class:`TraceRecorder` is the recording side. It is a
:class:`~gunguard.assembly.build.SensorTap`: it wraps the tach edge callback and the
force sensor's read where they enter the supervisor, passing everything through
unchanged, and listens to the event bus for the rest. Nothing is written on the edge
thread or the control loop: they append a tuple to a bounded in-memory queue, and the
``gunguard-recorder`` thread formats and writes it every 0.25 s. A full queue drops
new samples (counted, and marked in the trace by a ``gap`` line); it never blocks and
never grows without bound. :func:`read_trace` is the reading side, as strict as the
config and scenario loaders: every problem with the file's line and key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from gunguard.config.loader import ConfigError, LocatedProblem, config_hash
from gunguard.config.schema import GunguardConfig
from gunguard.core import events
from gunguard.core.clock import Clock
from gunguard.core.events import Event, State
from gunguard.core.ports import ForceInput

log = logging.getLogger(__name__)

FORMAT = "gunguard-trace/1"
#: Queued samples at most: about 3 minutes of a 1 kHz loop's readings and a 2400 ppm
#: tach's edges (about 30 MB) if the writer could not write at all.
BUFFER_ITEMS = 262_144
#: How often the writer thread takes what is queued and writes it.
FLUSH_EVERY_S = 0.25
#: Problems listed before reading stops.
MAX_PROBLEMS = 20

# Line kinds (the ``k`` field).
HEADER, TACH, FORCE, SELECT, STOP, RESET = "header", "tach", "force", "select", "stop", "reset"
POWER, TRIP, CONFIG, GAP, END = "power", "trip", "config", "gap", "end"

EdgeHandler = Callable[[float, bool], None]


# -- recording ---------------------------------------------------------------------------
class _RecordingForce:
    """The force sensor as the supervisor reads it; a changed raw reading is queued.

    The supervisor reads under its lock (tick and admission), so the comparison with
    the last reading never races.
    """

    __slots__ = ("_clock", "_last", "_put", "_sensor")

    def __init__(
        self, sensor: ForceInput, put: Callable[[tuple[Any, ...]], None], clock: Clock
    ) -> None:
        self._sensor = sensor
        self._put = put
        self._clock = clock
        self._last: float | None = None

    def read_raw(self) -> float:
        raw = self._sensor.read_raw()
        if raw != self._last:
            self._last = raw
            self._put((FORCE, self._clock.monotonic(), raw))
        return raw

    def newtons(self, raw: float) -> float:
        return self._sensor.newtons(raw)


class TraceRecorder:
    """Records what the supervisor sees into a trace file (``gunguard run --record``).

    Open it before the daemon is assembled (it is the daemon's sensor tap), subscribe
    :meth:`on_event` to the bus, call :meth:`stopping` when a stop is requested and
    :meth:`close` after power is off. Write errors are logged once; the recording then
    ends, the daemon carries on.
    """

    def __init__(
        self,
        path: Path,
        cfg: GunguardConfig,
        clock: Clock,
        *,
        config: str,
        capacity: int = BUFFER_ITEMS,
    ) -> None:
        self.path = path
        self._clock = clock
        self._capacity = capacity
        self._queue: deque[tuple[Any, ...]] = deque()
        self.dropped = 0
        self._dropped_since_gap = 0
        self._drop_first: float | None = None
        self._drop_last: float | None = None
        self._config_state: State | None = None
        self._end: float | None = None
        self._failed = False
        self._closed = False
        self._file: IO[str] = path.open("w", encoding="utf-8")  # OSError: the caller says
        #: Monotonic time of the recording's start: every ``t`` counts from it.
        self.t0 = clock.monotonic()
        wall = clock.wall()
        hw = cfg.hardware
        fs = hw.force_sensor
        header = {
            "k": HEADER,
            "format": FORMAT,
            "gunguard": _version(),
            "config": config,
            "config_hash": config_hash(cfg),
            "pulses_per_percussion": hw.tachometer.pulses_per_percussion,
            "tach_pull_up": hw.tachometer.pull_up,
            "calibration": {
                "adc": fs.adc,
                "zero": fs.zero,
                "newtons_per_unit": fs.newtons_per_unit,
                "valid_min": fs.valid_min,
                "valid_max": fs.valid_max,
            },
            "loop_rate_hz": cfg.loop.rate_hz,
            "force": "changes",
            "start_wall": dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(),
            "start_wall_s": wall,
            "start_monotonic": self.t0,
            "boot_id": clock.boot_id(),
        }
        self._write([_json(header)])
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="gunguard-recorder", daemon=True)
        self.thread.start()

    # -- the tap (edge thread, control loop): a tuple appended, nothing else ----------------
    def _put(self, item: tuple[Any, ...]) -> None:
        if len(self._queue) >= self._capacity:
            # Full: drop the new sample (the queued ones stay in order); never block.
            self.dropped += 1
            self._dropped_since_gap += 1
            if self._drop_first is None:
                self._drop_first = item[1]
            self._drop_last = item[1]
            return
        self._queue.append(item)

    def edges(self, handler: EdgeHandler) -> EdgeHandler:
        """The supervisor's edge handler, called first; then the edge is queued."""
        put = self._put

        def on_edge(t: float, active: bool) -> None:
            try:
                handler(t, active)
            finally:
                put((TACH, t, active))

        return on_edge

    def force(self, sensor: ForceInput) -> ForceInput:
        return _RecordingForce(sensor, self._put, self._clock)

    # -- the event bus (dispatcher thread) --------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Operator actions, power and trips, from the events the supervisor posted.

        A region armed is a ``select``, a refused selection too (an attempt); a region
        disarmed is a ``stop`` (before a reset or a refusal it changes nothing on
        replay: those disarm too); a reset that cleared a trip is a ``reset``. A reload
        that disarms (a ``config`` event, then its refusal in the same change) is a
        ``stop``, not a selection.
        """
        kind, t, fields = event.kind, event.t, event.fields
        if kind == events.REGION:
            region = fields.get("region")
            self._put((STOP, t) if region is None else (SELECT, t, region))
        elif kind == events.REFUSED:
            region = fields.get("region")
            reload = event.state is not None and event.state is self._config_state
            if region is not None and not reload:
                self._put((SELECT, t, region))
        elif kind == events.RESET:
            self._put((RESET, t))
        elif kind == events.POWER:
            self._put((POWER, t, bool(fields.get("on"))))
        elif kind == events.TRIP:
            self._put((TRIP, t, str(fields.get("reason")), str(fields.get("detail", ""))))
        elif kind == events.CONFIG:
            self._config_state = event.state
            self._put((CONFIG, t, str(fields.get("tag", ""))))

    # -- life cycle -----------------------------------------------------------------------
    def stopping(self) -> None:
        """A stop was requested: the recording ends here (the loop ends within a tick)."""
        if self._end is None:
            self._end = self._clock.monotonic()

    def close(self) -> None:
        """Write what is queued and the ``end`` line; close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self.thread.join(timeout=10.0)
        self._drain()
        end = self._end if self._end is not None else self._clock.monotonic()
        self._write([_json({"k": END, "t": round(self._rel(end), 6), "dropped": self.dropped})])
        try:
            self._file.close()
        except OSError as exc:
            self._fail(exc)
        if self.dropped:
            log.warning(
                "recording %s: %d samples dropped (the writer fell behind); see its gap lines",
                self.path,
                self.dropped,
            )

    # -- the writer thread ----------------------------------------------------------------
    def _run(self) -> None:
        _lower_priority()
        while not self._stop.wait(FLUSH_EVERY_S):
            self._drain()

    def _drain(self) -> None:
        queue = self._queue
        lines: list[str] = []
        while queue:
            lines.append(self._line(queue.popleft()))
            if len(lines) >= 4096:
                self._write(lines)
                lines = []
        if self._dropped_since_gap:
            n, self._dropped_since_gap = self._dropped_since_gap, 0
            first, last = self._drop_first or 0.0, self._drop_last or 0.0
            self._drop_first = self._drop_last = None
            lines.append(
                f'{{"k":"gap","t":{self._rel(first):.6f},"until":{self._rel(last):.6f},'
                f'"dropped":{n}}}\n'
            )
        self._write(lines)

    def _rel(self, t: float) -> float:
        return max(0.0, t - self.t0)

    def _line(self, item: tuple[Any, ...]) -> str:
        kind, t = item[0], self._rel(item[1])
        if kind == TACH:
            return f'{{"k":"tach","t":{t:.6f},"active":{"true" if item[2] else "false"}}}\n'
        if kind == FORCE:
            raw = item[2]
            return f'{{"k":"force","t":{t:.6f},"raw":{raw!r}}}\n' if math.isfinite(raw) else ""
        if kind in (STOP, RESET):
            return f'{{"k":"{kind}","t":{t:.6f}}}\n'
        if kind == SELECT:
            return f'{{"k":"select","t":{t:.6f},"region":{json.dumps(item[2])}}}\n'
        if kind == POWER:
            return f'{{"k":"power","t":{t:.6f},"on":{"true" if item[2] else "false"}}}\n'
        if kind == TRIP:
            return _json({"k": TRIP, "t": round(t, 6), "reason": item[2], "detail": item[3]})
        return _json({"k": CONFIG, "t": round(t, 6), "tag": item[2]})

    def _write(self, lines: list[str]) -> None:
        if not lines or self._failed:
            return
        try:
            self._file.write("".join(lines))
            self._file.flush()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if not self._failed:
            self._failed = True
            log.error("recording %s stopped: %s (the daemon carries on)", self.path, exc)


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":")) + "\n"


def _lower_priority() -> None:
    """The writer yields to the loop: normal scheduling (even in a SCHED_FIFO unit), nice 10."""
    tid = threading.get_native_id()
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, tid, 10)


def _version() -> str:
    try:
        return metadata.version("gunguard")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0+unknown"


# -- reading -------------------------------------------------------------------------------
@dataclass
class Trace:
    """A trace, read and checked; times in seconds since the recording started."""

    source: str
    header: dict[str, Any]
    edges: list[tuple[float, bool]] = field(default_factory=list)
    forces: list[tuple[float, float]] = field(default_factory=list)
    #: Operator actions in time order: (t, "select" | "stop" | "reset", region or None).
    actions: list[tuple[float, str, str | None]] = field(default_factory=list)
    power: list[tuple[float, bool]] = field(default_factory=list)
    trips: list[tuple[float, str]] = field(default_factory=list)
    #: Samples dropped by the recorder: (from, until, how many).
    gaps: list[tuple[float, float, int]] = field(default_factory=list)
    #: The ``end`` line's time; None: the recording was cut short (the daemon killed).
    end: float | None = None

    @property
    def duration(self) -> float:
        """Where a replay ends: the ``end`` line, else the last thing recorded."""
        if self.end is not None:
            return self.end
        times = [
            seq[-1][0]
            for seq in (self.edges, self.forces, self.actions, self.power, self.trips)
            if seq
        ]
        return max(times, default=0.0)

    @property
    def pulses_per_percussion(self) -> int:
        return int(self.header["pulses_per_percussion"])


_NUMBER = (int, float)
_BOOL = (bool,)
_STR = (str,)
_NULLABLE_STR = (str, type(None))

#: Each line kind: its required keys and their types (``t`` everywhere), optional keys.
_KINDS: dict[str, tuple[dict[str, tuple[type, ...]], dict[str, tuple[type, ...]]]] = {
    TACH: ({"active": _BOOL}, {}),
    FORCE: ({"raw": _NUMBER}, {}),
    SELECT: ({"region": _STR}, {}),
    STOP: ({}, {}),
    RESET: ({}, {}),
    POWER: ({"on": _BOOL}, {}),
    TRIP: ({"reason": _STR}, {"detail": _STR}),
    CONFIG: ({}, {"tag": _STR}),
    GAP: ({"until": _NUMBER, "dropped": (int,)}, {}),
    END: ({}, {"dropped": (int,)}),
}

_HEADER_REQUIRED: dict[str, tuple[type, ...]] = {
    "format": _STR,
    "pulses_per_percussion": (int,),
    "calibration": (dict,),
}
_HEADER_OPTIONAL: dict[str, tuple[type, ...]] = {
    "gunguard": _STR,
    "config": _NULLABLE_STR,
    "config_hash": _NULLABLE_STR,
    "tach_pull_up": _BOOL,
    "loop_rate_hz": _NUMBER,
    "force": _STR,
    "start_wall": _NULLABLE_STR,
    "start_wall_s": _NUMBER,
    "start_monotonic": _NUMBER,
    "boot_id": _NULLABLE_STR,
}
_CALIBRATION = {"adc": _STR, "zero": _NUMBER, "newtons_per_unit": _NUMBER}
_CALIBRATION_OPTIONAL = {"valid_min": _NUMBER, "valid_max": _NUMBER}


def _typed(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true is not a number here
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, types)


def _type_name(types: tuple[type, ...]) -> str:
    return {
        _NUMBER: "a number",
        _BOOL: "true or false",
        _STR: "a string",
        _NULLABLE_STR: "a string or null",
        (int,): "an integer",
        (dict,): "an object",
    }.get(types, "of another type")


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[LocatedProblem] = []

    def add(self, line: int, path: tuple[str | int, ...], value: Any, message: str) -> None:
        self.items.append(LocatedProblem(self.source, line, path, value, message))
        if len(self.items) >= MAX_PROBLEMS:
            raise ConfigError(self.items)


def _check_keys(
    problems: _Problems,
    line: int,
    obj: dict[str, Any],
    required: dict[str, tuple[type, ...]],
    optional: dict[str, tuple[type, ...]],
    prefix: tuple[str, ...] = (),
) -> bool:
    ok = True
    for key, value in obj.items():
        types = required.get(key) or optional.get(key)
        if types is None:
            problems.add(line, (*prefix, key), value, "unknown key")
            ok = False
        elif not _typed(value, types):
            problems.add(line, (*prefix, key), value, f"must be {_type_name(types)}")
            ok = False
    for key in required:
        if key not in obj:
            problems.add(line, (*prefix, key), obj, "missing")
            ok = False
    return ok


def read_trace(path: Path) -> Trace:
    """Read and check a trace; every problem (up to 20) with its line and key."""
    source = str(path)
    problems = _Problems(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([LocatedProblem(source, None, (), None, f"cannot read: {exc}")]) from None
    lines = text.split("\n")
    truncated = False
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        truncated = True  # no newline at the end: the last line may be cut off
    trace: Trace | None = None
    last_t = 0.0
    for number, raw_line in enumerate(lines, start=1):
        if not raw_line.strip():
            continue
        try:
            obj = json.loads(raw_line)
        except json.JSONDecodeError as exc:
            if truncated and number == len(lines):
                break  # the recorder was killed mid-line: the trace ends before it
            problems.add(number, (), raw_line[:60], f"not a JSON object: {exc.msg}")
            continue
        if not isinstance(obj, dict):
            problems.add(number, (), obj, "not a JSON object")
            continue
        kind = obj.get("k")
        if trace is None:
            trace = _header(problems, number, obj, source)
            if trace is None:
                raise ConfigError(problems.items)
            continue
        spec = _KINDS.get(kind) if isinstance(kind, str) else None
        if spec is None:
            known = ", ".join(_KINDS)
            problems.add(number, ("k",), kind, f"not a line kind of {FORMAT} ({known})")
            continue
        body = {k: v for k, v in obj.items() if k != "k"}
        required = {"t": _NUMBER, **spec[0]}
        if not _check_keys(problems, number, body, required, spec[1]):
            continue
        t = float(body["t"])
        if t < 0.0:
            problems.add(number, ("t",), t, "must be >= 0 (seconds since the recording began)")
            continue
        last_t = max(last_t, t)
        if trace.end is not None:
            problems.add(number, ("k",), kind, "a line after the end line")
            continue
        _take(problems, number, trace, kind, t, body)
    if trace is None:
        raise ConfigError([LocatedProblem(source, 1, (), None, "empty: no header line")])
    if problems.items:
        raise ConfigError(problems.items)
    for seq in (trace.edges, trace.forces, trace.actions, trace.power, trace.trips):
        seq.sort(key=lambda item: item[0])  # stable: equal times keep the file's order
    if trace.end is not None and trace.end < last_t:
        trace.end = last_t
    return trace


def _header(problems: _Problems, number: int, obj: dict[str, Any], source: str) -> Trace | None:
    if obj.get("k") != HEADER:
        problems.add(
            number, ("k",), obj.get("k"), f"the first line must be the header (k: {HEADER})"
        )
        return None
    body = {k: v for k, v in obj.items() if k != "k"}
    if not _check_keys(problems, number, body, _HEADER_REQUIRED, _HEADER_OPTIONAL):
        return None
    if body["format"] != FORMAT:
        problems.add(number, ("format",), body["format"], f"not {FORMAT}: another version")
        return None
    ppp = body["pulses_per_percussion"]
    if not 1 <= ppp <= 64:
        problems.add(number, ("pulses_per_percussion",), ppp, "must be 1..64")
        return None
    cal = body["calibration"]
    if not _check_keys(
        problems, number, cal, _CALIBRATION, _CALIBRATION_OPTIONAL, prefix=("calibration",)
    ):
        return None
    if not cal["newtons_per_unit"] > 0:
        problems.add(number, ("calibration", "newtons_per_unit"), cal["newtons_per_unit"], "> 0")
        return None
    return Trace(source=source, header=body)


def _take(
    problems: _Problems, number: int, trace: Trace, kind: str, t: float, body: dict[str, Any]
) -> None:
    if kind == TACH:
        trace.edges.append((t, body["active"]))
    elif kind == FORCE:
        raw = float(body["raw"])
        if not 0.0 <= raw <= 1.0:
            problems.add(number, ("raw",), raw, "a raw ADC reading is 0..1")
        else:
            trace.forces.append((t, raw))
    elif kind == SELECT:
        trace.actions.append((t, SELECT, body["region"]))
    elif kind in (STOP, RESET):
        trace.actions.append((t, kind, None))
    elif kind == POWER:
        trace.power.append((t, body["on"]))
    elif kind == TRIP:
        trace.trips.append((t, body["reason"]))
    elif kind == GAP:
        trace.gaps.append((t, float(body["until"]), body["dropped"]))
    elif kind == END:
        trace.end = t
