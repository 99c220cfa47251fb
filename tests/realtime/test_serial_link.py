"""The Pi's link endpoint against the simulated firmware: virtual time first (exact
timings, no sleeps), then real time through pyserial on a pseudo-terminal."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from gunguard.core.clock import VirtualClock
from gunguard.link.protocol import (
    Attachment,
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
    StatusFlags,
    Stop,
    StopReason,
    Warn,
    WarningCode,
)
from gunguard.link.serial_link import (
    Backoff,
    ButtonEvent,
    LinkEndpoint,
    SerialTransport,
)
from gunguard.sim.firmware import PtyFirmware, SimFirmwareEndpoint
from tests.waiting import DEADLINE_S, wait_for

STEP = 0.01


def _frames(data: bytes) -> list[tuple[bytes, Frame | None]]:
    """Split a burst into its delimited pieces, each with its decoding (None if it is
    not a valid frame: a flush byte, garbage, another protocol version)."""
    pieces = [piece + b"\x00" for piece in data.split(b"\x00")]
    pieces[-1] = pieces[-1][:-1]  # whatever follows the last delimiter
    out = []
    for piece in pieces:
        if piece:
            decoded = FrameDecoder().feed(piece)
            out.append((piece, decoded[0] if decoded else None))
    return out


class Lose:
    """Loses frames of one kind on the virtual wire (the first ``count``, or all)."""

    def __init__(self, wire: Wire, kind: type[Message], count: int | None = None):
        self.wire, self.kind, self.count = wire, kind, count
        self.at: list[float] = []

    def __call__(self, message: Message) -> bool:
        if isinstance(message, self.kind) and (self.count is None or len(self.at) < self.count):
            self.at.append(self.wire.now)
            return True
        return False


class Wire:
    """Pumps a Pi endpoint and a simulated firmware against each other in virtual
    time, records every frame each way, and can lose chosen frames."""

    def __init__(self, pi: LinkEndpoint | None = None, fw: SimFirmwareEndpoint | None = None):
        self.clock = VirtualClock()
        self.pi = pi or LinkEndpoint()
        self.fw = fw or SimFirmwareEndpoint(reported_ppm=2000, attachment=Attachment.MEDIUM_BALL)
        self.tick = 0
        self.to_gun: list[tuple[float, Message]] = []
        self.to_pi: list[tuple[float, Message]] = []
        self.lose_to_gun: Callable[[Message], bool] = lambda m: False
        self.lose_to_pi: Callable[[Message], bool] = lambda m: False

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def run_until(self, t: float) -> None:
        while self.now < t - 1e-9:
            self.tick += 1
            self.clock.advance_to(round(self.tick * STEP, 9))
            now = self.now
            self.fw.feed(self._carry(self.pi.outgoing(now), self.to_gun, self.lose_to_gun), now)
            self.pi.feed(self._carry(self.fw.outgoing(now), self.to_pi, self.lose_to_pi), now)

    def run_for(self, dt: float) -> None:
        self.run_until(self.now + dt)

    def _carry(self, data: bytes, log: list, lose: Callable[[Message], bool]) -> bytes:
        kept = bytearray()
        for piece, frame in _frames(data):
            if frame is not None:
                if lose(frame.message):
                    continue
                log.append((self.now, frame.message))
            kept += piece
        return bytes(kept)

    def sent_to_gun(self, kind: type[Message], since: float = 0.0) -> list[float]:
        return [t for t, m in self.to_gun if isinstance(m, kind) and t >= since - 1e-9]

    def sent_to_pi(self, kind: type[Message], since: float = 0.0) -> list[float]:
        return [t for t, m in self.to_pi if isinstance(m, kind) and t >= since - 1e-9]

    def running(self, cap: int = 2400) -> None:
        """Handshake, cap, release, and the user switches the motor on."""
        self.run_for(STEP)
        self.pi.send_rate_cap(cap, region=3)
        self.pi.send_release()
        self.run_for(STEP)
        self.fw.motor_on = True
        self.run_for(0.2)
        assert self.fw.motor_on and not self.fw.stop_latched


# ------------------------------------------------------------ virtual time


def test_handshake_completes_on_the_first_exchange():
    wire = Wire()
    assert wire.pi.state(0.0) == "down"
    assert wire.pi.latest_status is None
    wire.run_until(STEP)
    assert wire.sent_to_gun(Hello) == [STEP]
    assert wire.sent_to_pi(HelloReply) == [STEP]
    assert wire.pi.state(STEP) == "ok"
    assert wire.pi.firmware_id == "gunsim 1.0"
    assert wire.pi.peer_version == 1
    status = wire.pi.latest_status
    assert status is not None and status.received_at == STEP
    # The firmware powers up latched, with no cap, motor off.
    assert status.status.flags == StatusFlags.STOP_LATCHED
    assert (status.status.cap_ppm, status.status.motor_on) == (0, False)
    assert status.status.attachment is Attachment.MEDIUM_BALL
    assert wire.fw.deadman_s == 0.5  # told by HELLO


def test_each_burst_starts_with_a_flush_byte():
    pi, fw = LinkEndpoint(), SimFirmwareEndpoint()
    first = pi.outgoing(0.0)
    assert first[:1] == b"\x00" and first[1:] == Hello(500).encode(seq=0, ack=0)
    fw.feed(first, 0.0)
    reply = fw.outgoing(0.0)
    assert reply.startswith(b"\x00" + HelloReply("gunsim 1.0").encode(seq=0, ack=0))


def test_heartbeats_every_heartbeat_ms_when_idle():
    wire = Wire()
    wire.run_until(2.0)
    beats = wire.sent_to_gun(Heartbeat)
    assert beats == pytest.approx([round(0.11 + 0.1 * k, 9) for k in range(19)])
    assert wire.sent_to_gun(Hello) == [STEP]
    assert len(wire.to_gun) == 20  # nothing else is sent
    statuses = wire.sent_to_pi(Status)
    assert statuses == pytest.approx([round(0.01 + 0.1 * k, 9) for k in range(20)])


def test_heartbeat_period_is_configurable():
    wire = Wire(pi=LinkEndpoint(heartbeat_ms=50, heartbeat_timeout_ms=200))
    wire.run_until(1.0)
    beats = wire.sent_to_gun(Heartbeat)
    assert len(beats) == 19
    assert wire.fw.deadman_s == 0.2


def test_silent_exactly_after_the_timeout_then_handshakes_again():
    wire = Wire()
    wire.run_until(1.0)
    wire.fw.link_mode = "silent"
    last = wire.pi.last_valid_at
    assert last == pytest.approx(0.91)
    assert wire.pi.state(last + 0.5) == "ok"
    assert wire.pi.state(last + 0.5 + 0.001) == "silent"
    wire.run_until(2.0)
    assert wire.pi.state(wire.now) == "silent"
    assert wire.pi.silences == 1
    # Silence is detected on the first tick past the timeout; HELLO resumes then.
    hellos = wire.sent_to_gun(Hello, since=1.0)
    assert hellos[0] == pytest.approx(last + 0.51)
    assert len(wire.sent_to_gun(Heartbeat, since=hellos[0])) == 0
    wire.fw.link_mode = "ok"
    wire.run_for(0.1)
    assert wire.pi.state(wire.now) == "ok"
    replied = wire.sent_to_pi(HelloReply)[-1]
    wire.run_for(0.2)
    assert wire.sent_to_gun(Heartbeat, since=replied) == pytest.approx(
        [replied + 0.1, replied + 0.2]
    )


def test_garbage_from_the_gun_is_counted_and_the_link_goes_silent():
    wire = Wire()
    wire.run_until(1.0)
    ok_before = wire.pi.decoder.frames_ok
    wire.fw.link_mode = "garbage"
    wire.run_until(3.0)
    assert wire.pi.decoder.frames_ok == ok_before
    # Random bytes rarely contain the 0x00 delimiter, so few (long) bad frames result.
    assert wire.pi.decoder.frames_bad >= 1
    assert wire.pi.state(wire.now) == "silent"
    # The firmware still hears the Pi, so its dead-man rule never trips.
    assert wire.fw.deadman_trips == 0


def test_unplugged_gun_trips_its_deadman_and_stays_latched_until_released():
    wire = Wire()
    wire.running()
    wire.fw.link_mode = "unplugged"
    heard = max(wire.sent_to_gun(Message))
    wire.run_until(heard + 0.5)
    assert wire.fw.motor_on
    wire.run_until(heard + 0.51)
    assert not wire.fw.motor_on
    assert wire.fw.stop_latched and wire.fw.deadman_tripped
    assert wire.fw.deadman_trips == 1
    wire.run_until(heard + 2.0)
    assert wire.pi.state(wire.now) == "silent"

    wire.fw.link_mode = "ok"
    wire.run_for(1.0)
    assert wire.pi.state(wire.now) == "ok"
    status = wire.pi.latest_status.status
    assert status.flags & StatusFlags.DEADMAN and status.stop_latched
    assert wire.sent_to_gun(Release, since=heard) == []  # never released by itself
    wire.pi.send_release()
    wire.run_for(0.1)
    assert not wire.fw.stop_latched and not wire.fw.deadman_tripped
    assert not wire.fw.motor_on  # a release never restarts the motor
    wire.fw.motor_on = True
    assert wire.fw.motor_on


def test_deadman_when_the_pi_alone_goes_quiet():
    wire = Wire()
    wire.running()
    last = max(wire.sent_to_gun(Message))
    wire.lose_to_gun = lambda m: True
    wire.run_until(last + 0.5)
    assert wire.fw.motor_on
    wire.run_until(last + 0.51)
    assert not wire.fw.motor_on and wire.fw.deadman_tripped
    # The Pi still hears the truth about it.
    wire.run_for(0.1)
    assert wire.pi.latest_status.status.flags & StatusFlags.DEADMAN
    assert wire.pi.state(wire.now) == "ok"


def test_stop_is_obeyed_at_once_confirmed_and_not_repeated():
    wire = Wire()
    wire.running()
    t = wire.now
    wire.pi.send_stop(StopReason.RATE_LIMIT)
    wire.run_for(STEP)
    assert not wire.fw.motor_on and wire.fw.stop_latched and not wire.fw.deadman_tripped
    assert wire.fw.last_stop_reason is StopReason.RATE_LIMIT
    assert wire.pi.latest_status.status.stop_latched
    assert wire.pi.latest_status.received_at == wire.now  # confirmed in the same tick
    wire.run_for(2.0)
    assert wire.sent_to_gun(Stop, since=t) == [pytest.approx(t + STEP)]
    # Switching on while latched is refused.
    wire.fw.motor_on = True
    assert not wire.fw.motor_on and wire.fw.refused_starts == 1


def test_lost_stop_is_sent_again_after_retry_ms():
    wire = Wire()
    wire.running()
    wire.lose_to_gun = lose = Lose(wire, Stop, count=1)
    t = wire.now
    wire.pi.send_stop(StopReason.FORCE_LIMIT)
    wire.run_for(0.5)
    assert lose.at == [pytest.approx(t + STEP)]
    assert wire.sent_to_gun(Stop, since=t) == [pytest.approx(t + 0.21)]
    assert wire.fw.stop_latched and wire.fw.stops_received == 1
    assert wire.pi.commands_resent == 1


def test_stop_confirmation_waits_for_a_status_that_shows_the_latch():
    """What the daemon waits for at exit (§8.5): a STATUS acking the STOP, latched."""
    wire = Wire()
    wire.running()
    wire.lose_to_gun = Lose(wire, Stop, count=1)
    t = wire.now
    wire.pi.send_stop(StopReason.SHUTDOWN)
    assert not wire.pi.stop_confirmed()
    wire.run_until(t + 0.2)  # STATUSes arrive, acking later frames, but not latched
    assert not wire.fw.stop_latched and not wire.pi.stop_confirmed()
    wire.run_until(t + 0.22)  # the resend at 200 ms is obeyed and echoed at once
    assert wire.fw.last_stop_reason is StopReason.SHUTDOWN
    assert wire.pi.stop_confirmed()
    wire.pi.send_release()
    assert not wire.pi.stop_confirmed(), "a RELEASE replaces the STOP"


def test_stop_is_reasserted_if_the_firmware_unlatches_on_its_own():
    wire = Wire()
    wire.running()
    wire.pi.send_stop(StopReason.DOSE_LIMIT)
    wire.run_for(0.1)
    wire.fw.stop_latched = False  # a firmware bug
    wire.run_for(0.3)
    assert wire.fw.stop_latched
    assert wire.fw.stops_received == 2


def test_rate_cap_is_enforced_echoed_and_flagged():
    wire = Wire()
    wire.fw.reported_ppm = 3000
    wire.running(cap=2400)
    status = wire.pi.latest_status.status
    assert (status.reported_ppm, status.cap_ppm) == (2400, 2400)
    assert status.flags & StatusFlags.CAP_CLAMPED
    assert wire.fw.region == 3
    wire.fw.reported_ppm = 1499.6  # scenarios give rates as floats
    wire.pi.send_rate_cap(1500)
    wire.run_for(STEP)
    assert wire.fw.output_ppm == 1500
    assert wire.pi.latest_status.status.reported_ppm == 1500
    wire.pi.send_rate_cap(0)
    wire.run_for(STEP)
    assert not wire.fw.motor_on
    wire.fw.motor_on = True
    assert not wire.fw.motor_on
    assert len(wire.sent_to_gun(RateCap)) == 3


def test_release_is_retried_then_given_up_never_repeated_later():
    wire = Wire()
    wire.run_for(STEP)
    wire.lose_to_gun = lose = Lose(wire, Release)
    t = wire.now
    wire.pi.send_release()
    wire.run_for(2.0)
    # Sent, retried every retry_ms, abandoned after heartbeat_timeout_ms.
    assert lose.at == pytest.approx([t + 0.01, t + 0.21, t + 0.41])
    assert wire.pi.releases_failed == 1
    assert wire.fw.stop_latched


def test_repeating_a_wish_every_tick_sends_nothing_more():
    wire = Wire()
    wire.running()
    sent = wire.pi.frames_sent
    for _ in range(100):
        wire.pi.send_rate_cap(2400, region=3)
        wire.pi.send_warning(WarningCode.NONE)
        wire.pi.send_stop(StopReason.DOSE_LIMIT)
        wire.run_for(STEP)
    assert len(wire.sent_to_gun(RateCap)) == 1  # the one from running()
    assert len(wire.sent_to_gun(Warn)) == 1
    assert len(wire.sent_to_gun(Stop)) == 1
    assert wire.pi.frames_sent - sent == 2 + 9  # WARN, STOP, then heartbeats only


def test_release_after_a_stop_replaces_it():
    wire = Wire()
    wire.running()
    wire.pi.send_stop(StopReason.USER)
    wire.pi.send_release()
    wire.run_for(0.5)
    assert wire.fw.stops_received == 0 and not wire.fw.stop_latched


def test_warning_is_shown_and_cleared():
    wire = Wire()
    wire.running()
    wire.pi.send_warning(WarningCode.DOSE_NEAR_LIMIT)
    wire.run_for(STEP)
    assert wire.fw.warning is WarningCode.DOSE_NEAR_LIMIT
    assert wire.pi.latest_status.status.warning is WarningCode.DOSE_NEAR_LIMIT
    wire.pi.send_warning(WarningCode.NONE)
    wire.run_for(STEP)
    assert wire.fw.warning is WarningCode.NONE
    assert len(wire.sent_to_gun(Warn)) == 2


def test_rebooted_firmware_gets_cap_and_warning_again_but_stays_latched():
    wire = Wire()
    wire.running()
    wire.pi.send_warning(WarningCode.FORCE_HIGH)
    wire.run_for(0.2)
    wire.fw = SimFirmwareEndpoint()  # power cycle: silent until it hears HELLO
    wire.run_for(1.0)
    assert wire.pi.state(wire.now) == "ok"
    assert wire.pi.silences == 1
    assert wire.fw.cap_ppm == 2400 and wire.fw.warning is WarningCode.FORCE_HIGH
    assert wire.fw.stop_latched and wire.fw.releases_received == 0


def test_firmware_sends_nothing_but_a_flush_before_the_first_hello():
    fw = SimFirmwareEndpoint()
    assert fw.outgoing(0.0) == b"\x00"
    fw.press(ButtonId.POWER)
    fw.feed(Heartbeat().encode(), 0.1)  # a valid frame, but not a HELLO
    assert [fw.outgoing(k * 0.1) for k in range(1, 20)] == [b""] * 19
    fw.feed(Hello(300).encode(seq=1), 2.0)
    burst = fw.outgoing(2.0)
    assert [f.message for _, f in _frames(burst)] == [HelloReply("gunsim 1.0"), fw.status()]
    assert fw.deadman_s == 0.3


def test_deadman_timeout_from_hello_is_clamped():
    fw = SimFirmwareEndpoint()
    fw.feed(Hello(5000).encode(), 0.0)
    assert fw.deadman_s == 1.0
    fw.feed(Hello(10).encode(), 0.1)
    assert fw.deadman_s == 0.1


def test_buttons_are_queued_for_the_supervisor():
    wire = Wire()
    wire.run_for(0.1)
    wire.fw.press(ButtonId.PLUS)
    wire.fw.press(ButtonId.POWER, PressKind.LONG)
    wire.run_for(STEP)
    t = wire.now
    assert wire.pi.pop_buttons() == [
        ButtonEvent(t, ButtonId.PLUS, PressKind.SHORT),
        ButtonEvent(t, ButtonId.POWER, PressKind.LONG),
    ]
    assert wire.pi.pop_buttons() == []


def test_button_queue_is_bounded():
    pi = LinkEndpoint()
    pi.feed(b"".join(Button(ButtonId.MODE, PressKind.SHORT).encode(seq=i) for i in range(70)), 1.0)
    assert len(pi.pop_buttons()) == 64
    assert pi.buttons_dropped == 6


def test_version_mismatch_keeps_the_link_down_and_the_gun_latched():
    wire = Wire(fw=SimFirmwareEndpoint(version=2, firmware_id="gun-fw 2.0"))
    wire.run_for(0.05)
    wire.pi.send_rate_cap(2400)
    wire.pi.send_release()
    wire.run_for(2.0)
    assert wire.pi.state(wire.now) == "down"
    assert wire.pi.peer_version == 2 and wire.pi.firmware_id == "gun-fw 2.0"
    hellos = len(wire.sent_to_gun(Hello))
    assert hellos == 21  # one per heartbeat period, 0.01 .. 2.01 s
    assert wire.pi.version_mismatches == wire.fw.version_mismatches == hellos
    assert wire.pi.releases_failed == 1
    assert wire.fw.stop_latched and wire.fw.cap_ppm == 0  # commands in version 1 ignored
    assert wire.fw.decoder.errors["version"] > 0


def test_lost_frames_from_the_gun_are_counted():
    wire = Wire()
    wire.run_until(0.5)
    wire.lose_to_pi = Lose(wire, Status, count=2)
    wire.run_until(1.0)
    assert wire.pi.frames_lost == 2
    assert wire.pi.counters()["frames_lost"] == 2


def test_loopback_is_not_a_link():
    pi = LinkEndpoint()
    for k in range(100):
        now = k * STEP
        pi.feed(pi.outgoing(now), now)
    assert pi.state(1.0) == "down"
    assert pi.frames_unexpected == pi.frames_sent == 10


def test_connection_lost_is_down_and_a_new_connection_starts_over():
    wire = Wire()
    wire.run_until(0.5)
    wire.pi.connection_lost(wire.now)
    assert wire.pi.state(wire.now) == "down"
    assert wire.pi.outgoing(wire.now) == b""
    wire.pi.connection_made(wire.now)
    burst = wire.pi.outgoing(wire.now)
    flush, (_, hello) = _frames(burst)
    assert flush == (b"\x00", None) and hello.message == Hello(500)
    assert wire.pi.state(wire.now) == "down"


def test_sim_rejects_unknown_link_modes():
    fw = SimFirmwareEndpoint()
    with pytest.raises(ValueError):
        fw.link_mode = "flaky"
    assert fw.link_mode == "ok"


def test_sim_garbage_is_reproducible_from_its_seed():
    def garbage(seed: int) -> bytes:
        fw = SimFirmwareEndpoint(seed=seed)
        fw.link_mode = "garbage"
        return b"".join(fw.outgoing(k * 0.1) for k in range(20))

    assert garbage(7) == garbage(7)
    assert garbage(7) != garbage(8)


@given(st.binary(max_size=300), st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_endpoints_never_raise_on_any_bytes(a, b):
    pi, fw = LinkEndpoint(), SimFirmwareEndpoint()
    for now, data in ((0.0, a), (0.1, b)):
        pi.feed(data, now)
        fw.feed(data, now)
        pi.outgoing(now)
        fw.outgoing(now)
    assert pi.state(0.1) in {"ok", "silent", "down"}
    assert pi.decoder.internal_errors == fw.decoder.internal_errors == 0


def test_invalid_timing_is_rejected():
    with pytest.raises(ValueError):
        LinkEndpoint(heartbeat_ms=500, heartbeat_timeout_ms=500)


def test_backoff_doubles_to_the_cap_and_resets():
    backoff = Backoff(initial=0.1, maximum=5.0)
    delays = [backoff.next_delay() for _ in range(9)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])
    backoff.reset()
    assert backoff.next_delay() == 0.1


# ---------------------------------------------------------------- real time


@pytest.fixture
def pty_gun(tmp_path):
    sim = SimFirmwareEndpoint(reported_ppm=2000, attachment=Attachment.FORK)
    with PtyFirmware(sim, link_path=tmp_path / "ttyGUN") as gun:
        yield gun


def test_pty_link_through_pyserial(pty_gun):
    transport = SerialTransport(
        LinkEndpoint(), pty_gun.port, backoff=Backoff(initial=0.05, maximum=0.2)
    )
    transport.start()
    try:
        wait_for(lambda: transport.state(time.monotonic()) == "ok")
        assert transport.connects == 1
        status = transport.latest_status
        assert status is not None and status.status.attachment is Attachment.FORK
        assert transport.endpoint.firmware_id == "gunsim 1.0"

        transport.send_rate_cap(2400)
        transport.send_release()

        def released() -> bool:
            with pty_gun.lock:
                return not pty_gun.sim.stop_latched and pty_gun.sim.cap_ppm == 2400

        wait_for(released)
        with pty_gun.lock:
            pty_gun.sim.motor_on = True
        wait_for(lambda: transport.latest_status.status.reported_ppm == 2000)

        transport.send_stop(StopReason.SENSOR_MISMATCH)

        def stopped() -> bool:
            with pty_gun.lock:
                return not pty_gun.sim.motor_on and pty_gun.sim.stop_latched

        wait_for(stopped)
        with pty_gun.lock:
            assert pty_gun.sim.last_stop_reason is StopReason.SENSOR_MISMATCH
        wait_for(lambda: transport.latest_status.status.stop_latched)

        with pty_gun.lock:
            pty_gun.sim.press(ButtonId.MODE, PressKind.LONG)
        events: list[ButtonEvent] = []

        def pressed() -> bool:
            events.extend(transport.pop_buttons())
            return bool(events)

        wait_for(pressed)
        assert [(e.button, e.kind) for e in events] == [(ButtonId.MODE, PressKind.LONG)]

        # Pull the adapter: the port fails, the path vanishes, reopening is retried.
        pty_gun.unplug()
        wait_for(lambda: transport.disconnects == 1 and transport.open_failures >= 3)
        assert transport.state(time.monotonic()) == "down"
        assert transport.alive

        pty_gun.replug()
        wait_for(lambda: transport.state(time.monotonic()) == "ok")
        assert transport.connects == 2
        counts = transport.counters()
        assert counts["frames_ok"] > 0 and counts["disconnects"] == 1
    finally:
        transport.close()
    assert not transport.alive


def _handshaken(gun: PtyFirmware) -> SerialTransport:
    transport = SerialTransport(LinkEndpoint(), gun.port, backoff=Backoff(0.05, 0.2))
    transport.start()
    wait_for(lambda: transport.state(time.monotonic()) == "ok", "the handshake")
    return transport


def _sim(gun: PtyFirmware, read: Callable[[SimFirmwareEndpoint], object]) -> object:
    with gun.lock:
        return read(gun.sim)


def test_shutdown_stop_is_confirmed_by_the_firmware_before_the_port_closes(pty_gun):
    transport = _handshaken(pty_gun)
    try:
        transport.send_rate_cap(2400, 1)
        transport.send_release()
        wait_for(lambda: _sim(pty_gun, lambda s: not s.stop_latched), "the release")
        with pty_gun.lock:
            pty_gun.sim.motor_on = True
        # What FirmwareGuard.shutdown asserts at exit; the daemon then waits (bounded).
        transport.send_stop(StopReason.SHUTDOWN)
        transport.send_rate_cap(0)
        assert transport.confirm_stop(DEADLINE_S)
        with pty_gun.lock:
            sim = pty_gun.sim
            assert sim.last_stop_reason is StopReason.SHUTDOWN
            assert sim.stop_latched and not sim.motor_on
        status = transport.latest_status
        assert status is not None and status.status.stop_latched
    finally:
        transport.close()


def test_an_unconfirmed_shutdown_stop_waits_only_its_bound_and_is_still_sent(pty_gun):
    transport = _handshaken(pty_gun)
    try:
        with pty_gun.lock:
            pty_gun.sim.link_mode = "silent"  # hears everything, answers nothing
        transport.send_stop(StopReason.SHUTDOWN)
        started = time.monotonic()
        assert not transport.confirm_stop(0.3)
        assert time.monotonic() - started >= 0.3
        wait_for(
            lambda: _sim(pty_gun, lambda s: s.last_stop_reason is StopReason.SHUTDOWN),
            "the unconfirmed STOP to reach the firmware all the same",
        )
    finally:
        transport.close()


def test_a_stop_asserted_just_before_close_is_written_before_the_port_closes(pty_gun):
    transport = _handshaken(pty_gun)
    transport.send_stop(StopReason.SHUTDOWN)
    transport.close()
    assert not transport.alive
    wait_for(
        lambda: _sim(pty_gun, lambda s: s.last_stop_reason is StopReason.SHUTDOWN),
        "the STOP drained to the wire at close",
    )


def test_transport_logs_which_error_counters_grew(pty_gun, caplog):
    caplog.set_level(logging.WARNING, logger="gunguard.link.serial_link")
    transport = _handshaken(pty_gun)
    try:
        with pty_gun.lock:
            pty_gun.sim.link_mode = "garbage"

        def reported() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "gun firmware link errors" in r.getMessage()]

        (record, *_) = wait_for(reported, "a line about the grown error counters")
        assert record.journal["GUNGUARD_EVENT"] == "link_errors"  # type: ignore[attr-defined]
        counts = transport.counters()
        assert counts["frames_bad"] > 0
        assert counts["frames_bad"] == sum(counts[k] for k in counts if k.startswith("bad_"))
    finally:
        transport.close()


def test_confirm_stop_returns_at_once_without_a_link(tmp_path):
    transport = SerialTransport(
        LinkEndpoint(), str(tmp_path / "nothing"), backoff=Backoff(initial=0.01, maximum=0.05)
    )
    transport.start()
    try:
        transport.send_stop(StopReason.SHUTDOWN)
        started = time.monotonic()
        assert not transport.confirm_stop(DEADLINE_S)
        assert time.monotonic() - started < DEADLINE_S / 2
    finally:
        transport.close()


def test_transport_retries_a_missing_port_and_closes_promptly(tmp_path):
    transport = SerialTransport(
        LinkEndpoint(), str(tmp_path / "nothing"), backoff=Backoff(initial=0.01, maximum=0.05)
    )
    transport.start()
    wait_for(lambda: transport.open_failures >= 3)
    assert transport.connects == 0 and transport.state(time.monotonic()) == "down"
    transport.close()
    assert not transport.alive


class FakePort:
    """A port whose reads are scripted; used to break the transport on purpose."""

    def __init__(self, read: Callable[[], bytes]):
        self._read = read
        self.written = bytearray()
        self.closed = False
        self.in_waiting = 0

    def reset_input_buffer(self) -> None:
        pass

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)

    def read(self, size: int = 1) -> bytes:
        return self._read()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_transport_survives_any_exception_from_the_port():
    ports: list[FakePort] = []

    def explode() -> bytes:
        raise RuntimeError("driver bug")

    def factory(*args, **kwargs) -> FakePort:
        ports.append(FakePort(explode))
        return ports[-1]

    transport = SerialTransport(
        LinkEndpoint(), "fake", serial_factory=factory, backoff=Backoff(0.01, 0.02)
    )
    transport.start()
    try:
        wait_for(lambda: transport.disconnects >= 3)
        assert transport.alive
        assert all(p.closed for p in ports[:-1])
        assert ports[0].written.startswith(b"\x00")  # flush + HELLO went out first
    finally:
        transport.close()
    assert not transport.alive


def test_transport_retries_when_open_raises_serial_exception():
    attempts = []

    def factory(*args, **kwargs):
        attempts.append(kwargs)
        raise serial.SerialException("could not open port")

    transport = SerialTransport(
        LinkEndpoint(), "/dev/ttyGUN", serial_factory=factory, backoff=Backoff(0.01, 0.02)
    )
    transport.start()
    try:
        wait_for(lambda: len(attempts) >= 3)
    finally:
        transport.close()
    assert attempts[0] == {
        "baudrate": 115200,
        "timeout": 0.01,
        "write_timeout": 0.5,
        "exclusive": True,
    }


def test_control_calls_do_not_wait_for_a_blocked_port():
    blocked = threading.Event()
    release = threading.Event()

    def stuck() -> bytes:
        blocked.set()
        release.wait(10.0)
        time.sleep(0.001)
        return b""

    port = FakePort(stuck)
    transport = SerialTransport(LinkEndpoint(), "fake", serial_factory=lambda *a, **k: port)
    transport.start()
    try:
        assert blocked.wait(10.0)
        # The I/O thread is inside read(); these must return without it.
        transport.send_stop(StopReason.SHUTDOWN)
        assert transport.state(time.monotonic()) == "down"
        assert transport.pop_buttons() == []
        assert not release.is_set()
        release.set()
        stop = Stop(StopReason.SHUTDOWN).encode(seq=1, ack=0)
        wait_for(lambda: stop in bytes(port.written))
    finally:
        release.set()
        transport.close()
