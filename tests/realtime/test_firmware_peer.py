"""The real daemon against an independent firmware, written from docs/serial-protocol.md.

:class:`DocFirmware` is the gun's end of the protocol as the document describes it and
nothing else: the third-party ``cobs`` and ``crccheck`` packages for the framing, none
of gunguard's code. It sits behind a pseudo-terminal, and ``gunguard run --sim-gun``
is pointed at that pty through ``serial.port`` *without* ``--sim-firmware``: hardware
in the loop, the way a firmware developer runs gunguard against a board. The simulated
motor then turns at what this firmware reports.

One scripted session (about 8 s) is recorded once per module; each test asserts one
part of the contract on the record. Where this file and the document disagree, the
document is the contract: fix whichever is wrong, and say so.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import signal
import struct
import subprocess
import threading
import time
import tty
from dataclasses import dataclass, field
from typing import Any

import pytest
from cobs import cobs
from crccheck.crc import Crc16CcittFalse

from bench.processes import gunguard_command
from gunguard.operator.client import Connection
from gunguard.operator.protocol import Status, StatusResponse
from tests.waiting import wait_for

pytestmark = pytest.mark.realtime

# -- the protocol, as the document gives it ------------------------------------------------
VERSION = 1  # §4
MAX_ENCODED = 71  # §2.2: a longer run without 0x00 is dropped
HELLO, HEARTBEAT, RATE_CAP, STOP, WARN, RELEASE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
HELLO_REPLY, STATUS, BUTTON = 0x81, 0x82, 0x83
PAYLOAD = {HELLO: 2, HEARTBEAT: 0, RATE_CAP: 3, STOP: 1, WARN: 1, RELEASE: 0}  # §5
NAMES = {
    HELLO: "HELLO", HEARTBEAT: "HEARTBEAT", RATE_CAP: "RATE_CAP", STOP: "STOP",
    WARN: "WARN", RELEASE: "RELEASE",
}  # fmt: skip
STOP_REASONS = {1, 2, 3, 4, 5, 6, 7, 8, 255}  # §5.10
WARNING_CODES = {0, 1, 2, 3, 4, 5}
STOP_LATCHED, DEADMAN, CAP_CLAMPED = 0x01, 0x02, 0x04  # §5.10 StatusFlags
POWER, SHORT = 1, 1  # ButtonId, PressKind
MEDIUM_BALL = 2  # Attachment
STATUS_PERIOD_S = 0.100  # §8.1
REGION_CODE = {"calf-left": 1, "calf-right": 2}  # §5.11
RATE_LIMIT, NO_REGION, SHUTDOWN, OTHER = 1, 6, 8, 255


def crc16(data: bytes) -> int:
    """§3: CRC-16/CCITT-FALSE, from crccheck's catalogue."""
    return Crc16CcittFalse.calc(data)


@dataclass
class Frame:
    """A valid frame the firmware received from the Pi."""

    t: float
    seq: int
    ack: int
    kind: str
    fields: dict[str, int] = field(default_factory=dict)


class DocFirmware(threading.Thread):
    """The gun's side of docs/serial-protocol.md, on a pty master, with a toy motor.

    Hold :attr:`lock` to read or change it while it runs. ``speed_ppm`` is the rate
    the user's speed setting asks for; with ``regulate`` (§8.4 rule 1) the measured
    rate stays at or below the cap, without it this firmware breaks that rule.
    """

    def __init__(self, firmware_id: str = "docfw 0.1 (independent)") -> None:
        super().__init__(name="doc-firmware", daemon=True)
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        self.firmware_id = firmware_id
        self.lock = threading.Lock()
        # §8.3 power-on state: latched, cap 0, warning 0, motor off.
        self.latched, self.deadman_flag = True, False
        self.cap, self.region, self.warning = 0, 0, 0
        self.motor_on = False
        self.speed_ppm = 2000
        self.regulate = True
        self.deadman_s = 0.5  # §8.1: before any HELLO
        self.hello_seen = False
        self.tx_seq = 0
        self.rx_seq: int | None = None  # seq of the last valid frame from the Pi
        self.last_valid_at: float | None = None
        self._deadman_fired = False
        # What happened, for the tests.
        self.frames: list[Frame] = []
        self.sent: list[tuple[float, int, int]] = []  # (time, seq, type)
        self.bad = 0
        self.deadman_fired_at: list[tuple[float, float]] = []  # (when, last valid frame)
        self._buffer = bytearray()
        self._discarding = False
        self._out = bytearray(b"\x00")  # §2.3: a flush before the first frame
        self._status_due = False
        self._last_status_at: float | None = None
        self._halt = threading.Event()

    # -- the user and the line ---------------------------------------------------------
    def press_power(self) -> None:
        """The user presses power: BUTTON (§5.9); the motor toggles if it may (§8.3)."""
        if self.hello_seen:
            self._out += self._frame(BUTTON, bytes([POWER, SHORT]), time.monotonic())
        if self.motor_on:
            self.motor_on = False
        elif not self.latched and self.cap > 0:
            self.motor_on = True
        self._status_due = True

    def send_corrupted_status(self) -> None:
        """Line noise: a STATUS whose CRC does not match (it still uses up a seq)."""
        wire = bytearray(self._frame(STATUS, self._status_payload(), time.monotonic()))
        wire[-2] = wire[-2] ^ 0x01 or 0x02  # the CRC's high byte; never a 0x00
        self._out += wire

    def measured_ppm(self) -> int:
        if not self.motor_on:
            return 0
        return min(self.speed_ppm, self.cap) if self.regulate else self.speed_ppm

    def received(self, kind: str, since: float = 0.0) -> list[Frame]:
        return [f for f in self.frames if f.kind == kind and f.t >= since]

    # -- the thread ----------------------------------------------------------------------
    def run(self) -> None:
        while not self._halt.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.005)
            data = b""
            if ready:
                with contextlib.suppress(BlockingIOError, OSError):  # EIO: no one on the pty
                    data = os.read(self._master, 4096)
            now = time.monotonic()
            with self.lock:
                if data:
                    self._feed(data, now)
                self._check_deadman(now)
                if self.hello_seen and (
                    self._status_due
                    or self._last_status_at is None
                    or now - self._last_status_at >= STATUS_PERIOD_S
                ):
                    self._out += self._frame(STATUS, self._status_payload(), now)
                    self._last_status_at = now
                    self._status_due = False
                out, self._out = bytes(self._out), bytearray()
            if out:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.write(self._master, out)

    def close(self) -> None:
        self._halt.set()
        self.join(5.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- receiving (§2.2) ------------------------------------------------------------------
    def _feed(self, data: bytes, now: float) -> None:
        for byte in data:
            if byte != 0:
                if self._discarding:
                    continue
                self._buffer.append(byte)
                if len(self._buffer) > MAX_ENCODED:
                    self.bad += 1
                    self._buffer.clear()
                    self._discarding = True
                continue
            if self._discarding:
                self._discarding = False
            elif self._buffer:
                self._decode(bytes(self._buffer), now)
            self._buffer.clear()  # (an empty frame is a flush: ignored)

    def _decode(self, encoded: bytes, now: float) -> None:
        try:
            body = cobs.decode(encoded)
        except cobs.DecodeError:
            self.bad += 1
            return
        if len(body) < 6 or crc16(body[:-2]) != body[-2] | body[-1] << 8:
            self.bad += 1
            return
        version, kind, seq, ack = body[:4]
        payload = body[4:-2]
        if kind in (HELLO_REPLY, STATUS, BUTTON):
            return  # a valid frame of our own direction: an echo (ignored, §5)
        if kind not in PAYLOAD or (version != VERSION and kind != HELLO):
            self.bad += 1
            return
        if len(payload) != PAYLOAD[kind]:
            self.bad += 1
            return
        if (kind == STOP and payload[0] not in STOP_REASONS) or (
            kind == WARN and payload[0] not in WARNING_CODES
        ):
            self.bad += 1
            return
        if kind == HELLO and version != VERSION:  # §6 rule 4: answer, ignore otherwise
            self._out += self._hello_reply(now)
            return
        self.rx_seq = seq  # §7: ack names the last valid frame
        self.last_valid_at = now  # §8.2: every valid frame restarts the dead-man timer
        self._deadman_fired = False
        frame = Frame(now, seq, ack, NAMES[kind])
        self.frames.append(frame)
        self._obey(kind, payload, frame, now)

    def _obey(self, kind: int, payload: bytes, frame: Frame, now: float) -> None:
        if kind == HELLO:
            (deadman_ms,) = struct.unpack("<H", payload)
            frame.fields["deadman_ms"] = deadman_ms
            self._out += self._hello_reply(now)  # §6 rule 2: before the next STATUS
            self.deadman_s = min(max(deadman_ms, 100), 1000) / 1000
            self.hello_seen = True
            return
        if kind == RATE_CAP:
            max_ppm, region = struct.unpack("<HB", payload)
            frame.fields.update(max_ppm=max_ppm, region=region)
            self.cap, self.region = max_ppm, region
            if max_ppm == 0:
                self.motor_on = False  # §8.3: off, without latching
        elif kind == STOP:
            frame.fields["reason"] = payload[0]
            self.motor_on = False
            if not self.latched:
                self.latched, self.deadman_flag = True, False
        elif kind == RELEASE:
            self.latched = self.deadman_flag = False  # never starts the motor
        elif kind == WARN:
            frame.fields["code"] = payload[0]
            self.warning = payload[0]
        else:
            return  # HEARTBEAT
        self._status_due = True  # §8.1: an extra STATUS after a change

    def _check_deadman(self, now: float) -> None:
        """§8.2: no valid frame for deadman_ms: motor off, and latched with DEADMAN."""
        last = self.last_valid_at
        if last is None or self._deadman_fired or now - last <= self.deadman_s:
            return
        self._deadman_fired = True
        self.deadman_fired_at.append((now, last))
        self.motor_on = False
        if not self.latched:
            self.latched, self.deadman_flag = True, True
        self._status_due = True

    # -- sending -------------------------------------------------------------------------
    def _frame(self, kind: int, payload: bytes, now: float) -> bytes:
        body = bytes([VERSION, kind, self.tx_seq, self.rx_seq or 0]) + payload
        body += crc16(body).to_bytes(2, "little")
        self.sent.append((now, self.tx_seq, kind))
        self.tx_seq = (self.tx_seq + 1) % 256
        return cobs.encode(body) + b"\x00"

    def _hello_reply(self, now: float) -> bytes:
        raw = self.firmware_id.encode("ascii")
        return self._frame(HELLO_REPLY, bytes([len(raw)]) + raw, now)

    def _status_payload(self) -> bytes:
        flags = (STOP_LATCHED if self.latched else 0) | (DEADMAN if self.deadman_flag else 0)
        if self.motor_on and self.speed_ppm > self.cap and self.regulate:
            flags |= CAP_CLAMPED
        return struct.pack(
            "<BBHHBBhBB",
            int(self.motor_on),
            3,
            self.measured_ppm(),
            self.cap,
            MEDIUM_BALL,
            77,
            301,
            self.warning,
            flags,
        )


# -- the session -----------------------------------------------------------------------------
CONFIG = """\
hardware: {{pin_factory: mock}}
loop: {{rate_hz: 250, max_loop_gap_ms: 100}}
regions:
  calf-left: {{max_ppm: 2400}}
  calf-right: {{max_ppm: 2200}}
serial: {{port: "{port}", required: true, heartbeat_ms: 100, heartbeat_timeout_ms: 500}}
"""


@dataclass
class Session:
    """What one run recorded: the firmware, the daemon's output, and marks in time."""

    fw: DocFirmware
    marks: dict[str, float]
    statuses: dict[str, Status]
    returncode: int
    stdout: str
    stderr: str

    def events(self, kind: str) -> list[dict[str, Any]]:
        found = []
        for line in self.stdout.splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == kind:
                    found.append(event)
        return found

    def between(self, start: str, end: str | None = None) -> list[Frame]:
        """The firmware's received frames between two marks, HEARTBEATs left out."""
        t0, t1 = self.marks[start], self.marks[end] if end else float("inf")
        return [f for f in self.fw.frames if t0 <= f.t < t1 and f.kind != "HEARTBEAT"]


def _wait_fw(fw: DocFirmware, condition: Any, what: str) -> None:
    def check() -> bool:
        with fw.lock:
            return bool(condition(fw))

    wait_for(check, what)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("peer")
    fw = DocFirmware()
    fw.start()
    config = tmp / "cfg.yaml"
    config.write_text(CONFIG.format(port=fw.port))
    scenario = tmp / "scenario.yaml"
    scenario.write_text("duration: 600\nsteps: []\n")
    sock = tmp / "control.sock"
    out, err = (tmp / "stdout").open("w+"), (tmp / "stderr").open("w+")
    proc = subprocess.Popen(
        [*gunguard_command(), "run", "--config", str(config), "--sim-gun", str(scenario),
         "--control-socket", str(sock), "--json"],
        cwd=tmp, stdout=out, stderr=err, text=True,
    )  # fmt: skip
    marks: dict[str, float] = {}
    statuses: dict[str, Status] = {}

    def mark(name: str) -> None:
        marks[name] = time.monotonic()

    def status(conn: Connection) -> Status:
        response = conn.request("status")
        assert isinstance(response, StatusResponse), response
        return response.status

    try:
        wait_for(lambda: sock.exists() or proc.poll() is not None, "the control socket")
        if proc.poll() is not None:
            err.seek(0)
            raise AssertionError(f"gunguard run exited {proc.returncode}: {err.read()}")
        conn = Connection.open(sock, timeout=10.0, wait=20.0)
        try:
            wait_for(lambda: (s := status(conn)).link and s.link.state == "ok", "link ok")
            statuses["up"] = status(conn)
            mark("arm")
            assert conn.request("select_region", region="calf-left").ok
            _wait_fw(fw, lambda f: f.cap == 2400 and not f.latched, "cap and RELEASE")
            mark("power")
            with fw.lock:
                fw.press_power()
            wait_for(lambda: abs(status(conn).rate_ppm - 2000) < 60, "the motor at 2000/min")
            statuses["running"] = status(conn)
            mark("change")
            assert conn.request("select_region", region="calf-right").ok
            _wait_fw(fw, lambda f: f.region == REGION_CODE["calf-right"], "the new region")
            mark("noise")
            with fw.lock:
                fw.send_corrupted_status()
            wait_for(
                lambda: (link := status(conn).link).errors["crc"] == 1 and link.frames_lost == 1,
                "the bad frame counted, and the gap it left in the firmware's seq",
            )
            statuses["noise"] = status(conn)
            mark("motor_off")
            with fw.lock:
                fw.press_power()
            wait_for(lambda: status(conn).rate_ppm == 0.0, "the motor standing still")
            statuses["motor_off"] = status(conn)
            mark("disarm")
            assert conn.request("stop").ok
            _wait_fw(fw, lambda f: f.latched and f.cap == 0, "STOP and cap 0")
            mark("rogue")
            assert conn.request("select_region", region="calf-left").ok
            _wait_fw(fw, lambda f: not f.latched, "released again")
            with fw.lock:
                fw.regulate, fw.speed_ppm = False, 2600  # breaks §8.4 rule 1
                fw.press_power()
            _wait_fw(fw, lambda f: f.latched and not f.motor_on, "the overspeed STOP")
            statuses["overspeed"] = status(conn)
            mark("reset")
            assert conn.request("reset").ok
            with fw.lock:
                fw.regulate, fw.speed_ppm = True, 2000
            # (arming while the last 0.25 s is still over the cap is refused over_limit)
            wait_for(lambda: status(conn).rate_ppm == 0.0, "the motor standing still")
            assert conn.request("select_region", region="calf-left").ok
            _wait_fw(fw, lambda f: not f.latched, "released after the reset")
            with fw.lock:
                fw.press_power()
            wait_for(lambda: status(conn).rate_ppm > 1900, "running again")
        finally:
            conn.close()
        wait_for(
            lambda: "gun firmware link errors" in (tmp / "stderr").read_text(),
            "the log line about the bad frame (the counters are compared every second)",
        )
        mark("freeze")
        proc.send_signal(signal.SIGSTOP)  # the Pi process freezes: no frame at all
        try:
            _wait_fw(fw, lambda f: f.deadman_fired_at, "the dead-man rule")
            time.sleep(0.3)
        finally:
            mark("thaw")
            proc.send_signal(signal.SIGCONT)
        _wait_fw(fw, lambda f: f.received("HELLO", marks["thaw"]), "a new handshake")
        _wait_fw(fw, lambda f: f.received("STOP", marks["thaw"]), "the trip's STOP")
        time.sleep(0.3)
        mark("sigterm")
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(20.0)
        mark("end")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20.0)
        fw.close()
    out.seek(0)
    err.seek(0)
    return Session(fw, marks, statuses, returncode, out.read(), err.read())


# -- the contract, part by part --------------------------------------------------------------
def test_handshake(session):
    first = session.fw.frames[0]
    assert first.kind == "HELLO" and first.fields["deadman_ms"] == 500
    link = session.statuses["up"].link
    assert link.state == "ok" and link.firmware_id == "docfw 0.1 (independent)"
    assert link.frames_bad == 0 and link.version_mismatches == 0
    # §10: the whole state follows the HELLO at once, before any answer.
    assert [f.kind for f in session.fw.frames[:4]] == ["HELLO", "STOP", "RATE_CAP", "WARN"]
    assert session.fw.frames[1].fields["reason"] == NO_REGION
    assert session.fw.frames[2].fields == {"max_ppm": 0, "region": 0}
    assert session.fw.frames[3].fields == {"code": 0}


def test_every_pi_frame_was_valid_and_seq_counts_up_by_one(session):
    fw = session.fw
    assert fw.bad == 0
    seqs = [f.seq for f in fw.frames]
    assert all((b - a) % 256 == 1 for a, b in itertools.pairwise(seqs))


def test_the_pi_acks_only_frames_the_firmware_sent(session):
    """§7: ack is the seq of the last valid frame received from the peer; 0 before any
    (gunguard also sends 0 from a new handshake until the HELLO_REPLY)."""
    sent = session.fw.sent
    for frame in session.fw.frames:
        if frame.kind == "HELLO":
            continue
        earlier = {seq for t, seq, _ in sent if t < frame.t}
        assert frame.ack in earlier or frame.ack == 0, frame
    # They move forward (8-bit serial arithmetic), except back to 0 with a new HELLO.
    frames = session.fw.frames
    for a, b in itertools.pairwise(frames):
        if b.kind != "HELLO" and b.ack != 0:
            assert (b.ack - a.ack) % 256 < 128, (a, b)
    assert len({f.ack for f in frames}) > 5, "the acks follow the firmware's frames"


def test_heartbeats_keep_the_deadman_fed_until_the_freeze(session):
    fw, marks = session.fw, session.marks
    assert fw.received("HEARTBEAT", marks["arm"])
    times = [f.t for f in fw.frames if f.t < marks["freeze"] or f.t > marks["thaw"] + 0.05]
    gaps = [
        b - a
        for a, b in itertools.pairwise(times)
        if not a < marks["freeze"] < b and not a < marks["thaw"] < b
    ]
    assert max(gaps) < fw.deadman_s, "the Pi never fell silent for deadman_ms while running"


def test_rate_cap_with_the_region_code_then_release_on_arming(session):
    frames = session.between("arm", "power")
    assert [(f.kind, f.fields) for f in frames] == [
        ("RATE_CAP", {"max_ppm": 2400, "region": REGION_CODE["calf-left"]}),
        ("RELEASE", {}),
    ]
    assert frames[1].seq == (frames[0].seq + 1) % 256


def test_a_region_change_sends_the_new_cap_and_code_only(session):
    frames = session.between("change", "noise")
    assert [(f.kind, f.fields) for f in frames] == [
        ("RATE_CAP", {"max_ppm": 2200, "region": REGION_CODE["calf-right"]}),
    ]


def test_disarming_sends_stop_no_region_and_cap_zero(session):
    frames = session.between("disarm", "rogue")
    assert [(f.kind, f.fields) for f in frames] == [
        ("STOP", {"reason": NO_REGION}),
        ("RATE_CAP", {"max_ppm": 0, "region": 0}),
    ]


def test_the_simulated_motor_follows_what_the_firmware_reports(session):
    """Hardware in the loop: gunguard's simulated tachometer turns at the board's rate."""
    running, off = session.statuses["running"], session.statuses["motor_off"]
    assert running.power_on and abs(running.rate_ppm - 2000) < 60
    assert off.power_on and off.rate_ppm == 0.0 and off.trip is None


def test_a_bad_frame_shows_in_status_and_in_the_log(session):
    link = session.statuses["noise"].link
    assert link.errors["crc"] == 1 and link.frames_bad == 1
    assert link.frames_lost == 1  # its seq was used up: a gap
    # The serial thread compares the counters every second: the gap may come later.
    assert "gun firmware link errors since start: bad_crc +1" in session.stderr


def test_a_firmware_over_its_cap_is_stopped_with_the_rate_limit_reason(session):
    frames = session.between("rogue", "reset")
    stops = [f.fields["reason"] for f in frames if f.kind == "STOP"]
    assert stops == [RATE_LIMIT]
    stop_at = next(i for i, f in enumerate(frames) if f.kind == "STOP")
    assert frames[stop_at + 1].kind == "RATE_CAP" and frames[stop_at + 1].fields["max_ppm"] == 0
    assert session.statuses["overspeed"].trip.reason == "overspeed"


def test_the_deadman_stops_the_motor_of_a_frozen_pi_and_nothing_releases_it(session):
    fw, marks = session.fw, session.marks
    ((fired, last),) = fw.deadman_fired_at
    assert marks["freeze"] < fired < marks["thaw"]
    assert fired - last > fw.deadman_s
    assert not fw.motor_on and fw.latched
    # Once the Pi runs again it handshakes anew and sends a STOP (its loop was frozen:
    # a trip), and never a RELEASE: a dead-man latch is only cleared by a new arming.
    after = session.between("thaw")
    assert after[0].kind == "HELLO"
    assert {f.fields["reason"] for f in after if f.kind == "STOP"} <= {OTHER, SHUTDOWN}
    assert OTHER in {f.fields["reason"] for f in after if f.kind == "STOP"}
    assert "RELEASE" not in [f.kind for f in after]
    assert session.events("trip")[-1]["reason"] in ("loop_overrun", "link_lost")


def test_stop_shutdown_is_sent_and_confirmed_at_exit(session):
    frames = session.between("sigterm")
    assert [(f.kind, f.fields) for f in frames][-1:] == [("STOP", {"reason": SHUTDOWN})]
    # (On a loaded machine the link may have fallen silent once more since the thaw:
    # then a new HELLO and the trip's STOP come first, and still never a RELEASE.)
    assert {f.kind for f in frames} <= {"HELLO", "STOP", "RATE_CAP", "WARN"}
    assert [f.fields["reason"] for f in frames if f.kind == "STOP"][-1] == SHUTDOWN
    assert session.returncode == 0
    assert "gun firmware confirmed STOP(shutdown)" in session.stderr
    assert "did not confirm" not in session.stderr
