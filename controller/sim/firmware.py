"""A simulated gun firmware: the reference peer of ``docs/serial-protocol.md``.

:class:`SimFirmwareEndpoint` implements the firmware's obligations (answer HELLO,
send STATUS, dead-man stop on silence, never exceed the cap, latch a stop until
RELEASE, report what it does) as a pure, clock-driven object: bytes and ``now`` in,
bytes out. ``simulate`` pumps it against the Pi's ``LinkEndpoint`` in virtual time;
:class:`PtyFirmware` runs it behind a pseudo-terminal in real time so that tests and
demos exercise a real pyserial port.

Link fault modes model what the Pi can see of a broken link: ``silent`` (the gun
hears but sends nothing), ``garbage`` (line noise instead of frames), ``unplugged``
(nothing in, nothing out, so the firmware's dead-man rule trips).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import select
import threading
import tty
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, get_args

from gunguard.core.clock import Clock, RealClock
from gunguard.link.protocol import (
    PROTOCOL_VERSION,
    SEQ_MODULO,
    Attachment,
    Button,
    ButtonId,
    FrameDecoder,
    Hello,
    HelloReply,
    Message,
    PressKind,
    RateCap,
    Release,
    Status,
    StatusFlags,
    Stop,
    StopReason,
    Warn,
    WarningCode,
)

log = logging.getLogger(__name__)

LinkMode = Literal["ok", "silent", "garbage", "unplugged"]
LINK_MODES: tuple[LinkMode, ...] = get_args(LinkMode)

DEADMAN_DEFAULT_MS = 500
DEADMAN_MIN_MS = 100
DEADMAN_MAX_MS = 1000
_EPS = 1e-6


class SimFirmwareEndpoint:
    """The gun's side of the protocol, with a toy motor; pure and not thread-safe."""

    def __init__(
        self,
        *,
        firmware_id: str = "gunsim 1.0",
        version: int = PROTOCOL_VERSION,
        status_period_ms: int = 100,
        seed: int = 0,
        reported_ppm: float = 1800,
        speed_level: int = 3,
        attachment: Attachment = Attachment.NONE,
        battery_pct: int | None = 80,
        temperature_tenths_c: int | None = 250,
    ) -> None:
        self.firmware_id = firmware_id
        self.version = version
        self.status_period_s = status_period_ms / 1000
        self.decoder = FrameDecoder(expected_version=version)
        self._link_mode: LinkMode = "ok"

        # The gun. ``reported_ppm`` is the rate the motor runs at when nothing limits it
        # (the user's speed setting); what it reports is clamped by the cap and latch.
        self.reported_ppm = reported_ppm
        self.speed_level = speed_level
        self.attachment = attachment
        self.battery_pct = battery_pct
        self.temperature_tenths_c = temperature_tenths_c
        self._motor_on = False
        #: Fault: the drive output stays on whatever the Pi says (a firmware bug, a
        #: shorted driver). STATUS keeps reporting the motor on after STOP or cap 0.
        self.drive_stuck_on = False

        # What the Pi told it. At power-on: latched, cap 0 (the motor cannot run).
        self.stop_latched = True
        self.deadman_tripped = False
        self.cap_ppm = 0
        self.region: int | None = None
        self.warning = WarningCode.NONE
        self.last_stop_reason: StopReason | None = None
        self.deadman_s = DEADMAN_DEFAULT_MS / 1000

        self._rng = random.Random(seed)
        self._host_seen_at: float | None = None
        self._deadman_fired = False
        self._hello_seen = False
        self._tx_seq = 0
        self._rx_seq: int | None = None
        self._queue: list[Message] = []
        self._status_now = False
        self._last_status_at: float | None = None
        self._last_garbage_at: float | None = None
        self._flush_pending = True

        self.hellos_received = 0
        self.stops_received = 0
        self.releases_received = 0
        self.deadman_trips = 0
        self.refused_starts = 0
        self.frames_unexpected = 0
        self.version_mismatches = 0
        self.frames_sent = 0

    @property
    def link_mode(self) -> LinkMode:
        """``ok``, ``silent`` (hears, sends nothing), ``garbage`` (hears, sends random
        bytes), ``unplugged`` (hears nothing, sends nothing)."""
        return self._link_mode

    @link_mode.setter
    def link_mode(self, mode: LinkMode) -> None:
        if mode not in LINK_MODES:
            raise ValueError(f"link mode {mode!r} is not one of {LINK_MODES}")
        self._link_mode = mode

    # ------------------------------------------------------------ the gun

    @property
    def motor_on(self) -> bool:
        """Whether the motor runs. Switching it on is refused while latched or capped
        at 0, and a stop switches it off: RELEASE alone never restarts the motor.
        With :attr:`drive_stuck_on` it is on whatever happened."""
        return self._motor_on or self.drive_stuck_on

    @motor_on.setter
    def motor_on(self, on: bool) -> None:
        if on and (self.stop_latched or self.cap_ppm == 0):
            self.refused_starts += 1
            return
        if on != self._motor_on:
            self._status_now = True
        self._motor_on = on

    @property
    def output_ppm(self) -> int:
        """The rate the motor actually runs at (and the firmware reports)."""
        return round(min(self.reported_ppm, self.cap_ppm)) if self.motor_on else 0

    def press(self, button: ButtonId, kind: PressKind = PressKind.SHORT) -> None:
        """Report a button press to the Pi (buttons do not act on the toy motor).

        Before the first HELLO the firmware sends nothing, so such a press is lost."""
        if self._hello_seen:
            self._queue.append(Button(ButtonId(button), PressKind(kind)))

    def status(self) -> Status:
        flags = StatusFlags(0)
        if self.stop_latched:
            flags |= StatusFlags.STOP_LATCHED
        if self.deadman_tripped:
            flags |= StatusFlags.DEADMAN
        if self.motor_on and self.reported_ppm > self.cap_ppm:
            flags |= StatusFlags.CAP_CLAMPED
        return Status(
            motor_on=self.motor_on,
            speed_level=self.speed_level,
            reported_ppm=self.output_ppm,
            cap_ppm=self.cap_ppm,
            attachment=self.attachment,
            battery_pct=self.battery_pct,
            temperature_tenths_c=self.temperature_tenths_c,
            warning=self.warning,
            flags=flags,
        )

    # ----------------------------------------------------------- the link

    def feed(self, data: bytes, now: float) -> None:
        """Bytes from the Pi at ``now``. Never raises on any input."""
        self._check_deadman(now)
        if self.link_mode == "unplugged":
            return
        for frame in self.decoder.feed(data):
            message = frame.message
            if message.FROM_GUN:
                self.frames_unexpected += 1
                continue
            if isinstance(message, Hello):
                self.hellos_received += 1
                self._queue.append(HelloReply(self.firmware_id))
                if frame.version != self.version:
                    self.version_mismatches += 1
                    continue  # a foreign host does not feed the dead-man timer
                self.deadman_s = min(max(message.deadman_ms, DEADMAN_MIN_MS), DEADMAN_MAX_MS) / 1000
                self._hello_seen = True
            self._host_seen_at = now
            self._deadman_fired = False
            self._rx_seq = frame.seq
            self._obey(message)

    def outgoing(self, now: float) -> bytes:
        """Bytes to send to the Pi at ``now``, according to ``link_mode``."""
        self._check_deadman(now)
        if self.link_mode != "ok":
            self._queue.clear()  # lost on the wire
            self._status_now = False
            garbage_due = _due(self._last_garbage_at, self.status_period_s, now)
            if self.link_mode == "garbage" and garbage_due:
                self._last_garbage_at = now
                return self._rng.randbytes(self._rng.randint(1, 40))
            return b""
        out = bytearray()
        if self._flush_pending:
            out += b"\x00"
            self._flush_pending = False
        for message in self._queue:
            out += self._frame(message)
        self._queue.clear()
        if self._hello_seen and (
            self._status_now or _due(self._last_status_at, self.status_period_s, now)
        ):
            out += self._frame(self.status())
            self._last_status_at = now
            self._status_now = False
        return bytes(out)

    # ---------------------------------------------------------- internals

    def _obey(self, message: Message) -> None:
        if isinstance(message, RateCap):
            self.cap_ppm = message.max_ppm
            self.region = message.region
            if self.cap_ppm == 0:
                self._motor_on = False
        elif isinstance(message, Stop):
            self.stops_received += 1
            self.last_stop_reason = message.reason
            self._latch(deadman=False)
        elif isinstance(message, Release):
            self.releases_received += 1
            self.stop_latched = False
            self.deadman_tripped = False
        elif isinstance(message, Warn):
            self.warning = message.code
        else:
            return  # HELLO, HEARTBEAT: nothing to change
        self._status_now = True

    def _latch(self, *, deadman: bool) -> None:
        if not self.stop_latched:
            self.deadman_tripped = deadman
        self.stop_latched = True
        self._motor_on = False
        self._status_now = True

    def _check_deadman(self, now: float) -> None:
        if self._host_seen_at is None or self._deadman_fired:
            return
        if now - self._host_seen_at > self.deadman_s + _EPS:
            self._deadman_fired = True
            if not self.stop_latched:
                self.deadman_trips += 1
                self._latch(deadman=True)

    def _frame(self, message: Message) -> bytes:
        ack = 0 if self._rx_seq is None else self._rx_seq
        data = message.encode(seq=self._tx_seq, ack=ack, version=self.version)
        self._tx_seq = (self._tx_seq + 1) % SEQ_MODULO
        self.frames_sent += 1
        return data


def _due(last: float | None, period: float, now: float) -> bool:
    return last is None or now - last + _EPS >= period


class PtyFirmware:
    """Runs a :class:`SimFirmwareEndpoint` behind a pseudo-terminal, in real time.

    The Pi side opens :attr:`port` with pyserial. With ``link_path`` the port is a
    stable symlink (like ``/dev/serial/by-id/...``), so :meth:`unplug` and
    :meth:`replug` model a USB adapter pulled out and plugged back in.
    Hold :attr:`lock` to read or change :attr:`sim` while the pump thread runs.
    """

    def __init__(
        self,
        sim: SimFirmwareEndpoint | None = None,
        *,
        link_path: str | os.PathLike[str] | None = None,
        clock: Clock | None = None,
        poll_s: float = 0.005,
    ) -> None:
        self.sim = sim or SimFirmwareEndpoint()
        self.lock = threading.Lock()
        self.link_path = Path(link_path) if link_path is not None else None
        self.clock: Clock = clock or RealClock()
        self.poll_s = poll_s
        self._io_lock = threading.Lock()  # guards the fds against the pump thread
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_name: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> str:
        """What the Pi side opens: the symlink if any, else the pty slave."""
        if self.link_path is not None:
            return str(self.link_path)
        if self._slave_name is None:
            raise RuntimeError("PtyFirmware not started")
        return self._slave_name

    def start(self) -> PtyFirmware:
        self.replug()
        self._thread = threading.Thread(target=self._run, name="sim-firmware-pty", daemon=True)
        self._thread.start()
        return self

    def unplug(self) -> None:
        """Close the pty: the Pi's port fails and its path disappears."""
        with self._io_lock:
            self._close_fds()
            if self.link_path is not None:
                self.link_path.unlink(missing_ok=True)

    def replug(self) -> None:
        """Open a fresh pty (a new device) and point the symlink at it."""
        with self._io_lock:
            self._close_fds()
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no newline translation: a plain byte pipe
            os.set_blocking(master, False)
            self._master, self._slave = master, slave
            self._slave_name = os.ttyname(slave)
            if self.link_path is not None:
                tmp = self.link_path.with_name(self.link_path.name + ".tmp")
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(self._slave_name)
                tmp.replace(self.link_path)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.unplug()

    def __enter__(self) -> PtyFirmware:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._pump_once()
            except Exception:  # keep the simulated gun alive for the test's sake
                log.exception("sim firmware pump failed")
                self._stop.wait(self.poll_s)

    def _pump_once(self) -> None:
        with self._io_lock:
            master = self._master
            if master is None:
                data = b""
            else:
                ready, _, _ = select.select([master], [], [], self.poll_s)
                data = _read_available(master) if ready else b""
            with self.lock:
                now = self.clock.monotonic()
                if data:
                    self.sim.feed(data, now)
                out = self.sim.outgoing(now)
            if out and master is not None:
                with contextlib.suppress(BlockingIOError):
                    os.write(master, out)  # a full pty buffer drops bytes, like a UART
        if master is None:
            self._stop.wait(self.poll_s)

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None


def _read_available(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""
    except OSError as exc:
        if exc.errno == errno.EIO:  # no slave open at the moment
            return b""
        raise


#: Scenario button names (``firmware: {button: ...}``) as the gun's buttons report them.
BUTTONS: dict[str, tuple[ButtonId, PressKind]] = {
    "next": (ButtonId.PLUS, PressKind.SHORT),
    "previous": (ButtonId.MINUS, PressKind.SHORT),
    "reset": (ButtonId.MODE, PressKind.LONG),
}


def apply_firmware_step(
    sim: SimFirmwareEndpoint, step: Any, set_reported_ppm: Callable[[float | None], None]
) -> None:
    """Play a scenario's ``firmware:`` step on the simulated firmware.

    ``reported_ppm`` makes the firmware report a rate of its own (null: the truth
    again); the caller owns that override because it couples gun and firmware.
    """
    if "reported_ppm" in step.model_fields_set:
        set_reported_ppm(step.reported_ppm)
    if step.attachment is not None:
        sim.attachment = Attachment.from_label(step.attachment)
    if step.motor is not None:
        sim.motor_on = step.motor == "on"
    if step.button is not None:
        sim.press(*BUTTONS[step.button])
