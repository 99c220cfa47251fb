"""The wire codec: exact encodings, round trips, resynchronisation, and fuzzing.

The four fuzz tests together generate 100 000 inputs (30 000 + 10 000 + 40 000 +
20 000); none may raise, and everything the decoder returns must be a valid message.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gunguard.link.protocol import (
    MAX_ENCODED_LEN,
    MESSAGE_CLASSES,
    PROTOCOL_VERSION,
    Attachment,
    Button,
    ButtonId,
    DecodeError,
    Frame,
    FrameDecoder,
    Heartbeat,
    Hello,
    HelloReply,
    Message,
    MessageType,
    PressKind,
    RateCap,
    Release,
    Status,
    StatusFlags,
    Stop,
    StopReason,
    Warn,
    WarningCode,
    cobs_decode,
    cobs_encode,
    crc16_ccitt_false,
    decode_frame,
    encode_frame,
    seq_covers,
)

#: Decoder fuzzing: 1000 inputs per test in `make test`; the soak profile (`make soak`)
#: runs 25 000 per test, 100 000 in all.
FUZZ = settings(
    max_examples=max(1_000, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)

EXAMPLES: list[Message] = [
    Hello(),
    Hello(deadman_ms=0),
    Hello(deadman_ms=65535),
    Heartbeat(),
    RateCap(2400),
    RateCap(0, region=1),
    RateCap(65535, region=255),
    *[Stop(reason) for reason in StopReason],
    *[Warn(code) for code in WarningCode],
    Release(),
    HelloReply(""),
    HelloReply("gun-fw 1.4.2 (c0ffee)"),
    HelloReply("x" * 32),
    Status(
        motor_on=True,
        speed_level=3,
        reported_ppm=2400,
        cap_ppm=2400,
        attachment=Attachment.MEDIUM_BALL,
        battery_pct=80,
        temperature_tenths_c=352,
        warning=WarningCode.NONE,
        flags=StatusFlags.CAP_CLAMPED,
    ),
    Status(
        motor_on=False,
        speed_level=0,
        reported_ppm=0,
        cap_ppm=0,
        attachment=Attachment.UNKNOWN,
        battery_pct=None,
        temperature_tenths_c=None,
        warning=WarningCode.DOSE_NEAR_LIMIT,
        flags=StatusFlags.STOP_LATCHED | StatusFlags.DEADMAN,
    ),
    Status(
        False, 255, 65535, 65535, Attachment.NONE, 0, -32767, WarningCode.NONE, StatusFlags(0xFF)
    ),
    Status(True, 1, 1, 1, Attachment.CUSHION, 100, 32767, WarningCode.LINK_DEGRADED),
    *[Button(button, kind) for button in ButtonId for kind in PressKind],
]


def test_every_message_type_has_an_example():
    assert {type(m) for m in EXAMPLES} == set(MESSAGE_CLASSES.values())
    assert {m.TYPE for m in EXAMPLES} == set(MessageType)


@pytest.mark.parametrize("message", EXAMPLES, ids=repr)
@pytest.mark.parametrize(("seq", "ack"), [(0, 0), (1, 255), (255, 128)])
def test_round_trip(message, seq, ack):
    wire = message.encode(seq=seq, ack=ack)
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    assert len(wire) - 1 <= MAX_ENCODED_LEN
    expected = Frame(message=message, seq=seq, ack=ack, version=PROTOCOL_VERSION)
    assert decode_frame(wire[:-1]) == expected
    decoder = FrameDecoder()
    assert decoder.feed(wire) == [expected]
    assert (decoder.frames_ok, decoder.frames_bad) == (1, 0)
    assert type(message).unpack(message.pack()) == message


def test_crc_check_value():
    # The catalogue check value of CRC-16/CCITT-FALSE (a.k.a. CRC-16/IBM-3740).
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"", b"\x01"),
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
        (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
        (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255)) + b"\x01"),
    ],
)
def test_cobs_vectors(raw, encoded):
    assert cobs_encode(raw) == encoded
    assert cobs_decode(encoded) == raw


@given(st.binary(max_size=600))
@settings(max_examples=500, deadline=None)
def test_cobs_round_trip(raw):
    encoded = cobs_encode(raw)
    assert 0 not in encoded
    assert cobs_decode(encoded) == raw


# The worked examples of docs/serial-protocol.md, byte for byte.
DOC_EXAMPLES = [
    (RateCap(2400, region=3), 5, 2, "0a 01 03 05 02 60 09 03 e0 58 00"),
    (Heartbeat(), 0, 0, "03 01 02 01 03 14 9c 00"),
    (Stop(StopReason.RATE_LIMIT), 7, 3, "08 01 04 07 03 01 4e b1 00"),
    (
        Status(
            True,
            3,
            2400,
            2400,
            Attachment.MEDIUM_BALL,
            80,
            352,
            WarningCode.NONE,
            StatusFlags.CAP_CLAMPED,
        ),
        0x12,
        0x34,
        "0f 01 82 12 34 01 03 60 09 60 09 02 50 60 01 04 04 85 31 00",
    ),
]


@pytest.mark.parametrize(("message", "seq", "ack", "wire_hex"), DOC_EXAMPLES)
def test_documented_examples(message, seq, ack, wire_hex):
    assert message.encode(seq=seq, ack=ack).hex(" ") == wire_hex


def test_resynchronises_after_garbage():
    good = RateCap(2400).encode(seq=1)
    decoder = FrameDecoder()
    frames = decoder.feed(b"\x13\x37garbage\xff" + b"\x00" + good)
    assert [f.message for f in frames] == [RateCap(2400)]
    assert decoder.frames_bad == 1 and decoder.frames_ok == 1


def test_garbage_glued_to_a_frame_costs_that_frame_only():
    # No delimiter between garbage and a frame: they merge into one bad frame, the
    # next frame decodes. Senders flush with a lone 0x00 to avoid even that loss.
    first, second = Stop(StopReason.USER).encode(seq=1), Stop(StopReason.USER).encode(seq=2)
    decoder = FrameDecoder()
    frames = decoder.feed(b"\x05\x05" + first + second)
    assert [f.seq for f in frames] == [2]
    assert decoder.frames_bad == 1


def test_empty_frames_are_ignored():
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00" * 10 + Heartbeat().encode() + b"\x00\x00")[0].message == Heartbeat()
    assert (decoder.frames_ok, decoder.frames_bad) == (1, 0)


def test_frame_split_byte_by_byte():
    wire = HelloReply("gunsim").encode(seq=9, ack=4)
    decoder = FrameDecoder()
    frames = [f for i in range(len(wire)) for f in decoder.feed(wire[i : i + 1])]
    assert frames == [Frame(HelloReply("gunsim"), 9, 4)]


def test_oversize_run_is_dropped_once_and_memory_stays_bounded():
    decoder = FrameDecoder()
    for _ in range(100):
        assert decoder.feed(b"\x01" * 1000) == []
        assert len(decoder._buffer) <= MAX_ENCODED_LEN
    frames = decoder.feed(b"\x00" + Release().encode())
    assert [f.message for f in frames] == [Release()]
    assert decoder.errors == {"oversize": 1}
    assert decoder.frames_bad == 1


def test_length_bound_is_exact():
    decoder = FrameDecoder()
    decoder.feed(b"\x01" * MAX_ENCODED_LEN + b"\x00")  # framed, then fails its CRC
    assert decoder.errors == {"crc": 1}
    decoder.feed(b"\x01" * (MAX_ENCODED_LEN + 1) + b"\x00")
    assert decoder.errors == {"crc": 1, "oversize": 1}


def _body_frame(body: bytes, *, fix_crc: bool = True) -> bytes:
    if fix_crc:
        body += crc16_ccitt_false(body).to_bytes(2, "little")
    return cobs_encode(body) + b"\x00"


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (_body_frame(bytes([1, 0x02, 0, 0]), fix_crc=False), "length"),
        (_body_frame(bytes([1, 0x02, 0, 0, 0x00, 0x00]), fix_crc=False), "crc"),
        (_body_frame(bytes([1, 0x7F, 0, 0])), "type"),
        (_body_frame(bytes([2, 0x02, 0, 0])), "version"),
        (
            _body_frame(
                bytes([2, 0x82, 0, 0])
                + Status(False, 0, 0, 0, Attachment.NONE, None, None, WarningCode.NONE).pack()
            ),
            "version",
        ),
        (_body_frame(bytes([1, 0x02, 0, 0, 0xAA])), "length"),
        (_body_frame(bytes([1, 0x03, 0, 0, 0x60])), "length"),
        (_body_frame(bytes([1, 0x04, 0, 0, 0x00])), "value"),
        (_body_frame(bytes([1, 0x83, 0, 0, 9, 1])), "value"),
        (_body_frame(bytes([1, 0x81, 0, 0, 3, 0x41])), "length"),
        (_body_frame(bytes([1, 0x81, 0, 0, 1, 0x07])), "value"),
        (_body_frame(bytes([1, 0x82, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), "value"),
        (_body_frame(bytes([1, 0x82, 0, 0, 1, 0, 0, 0, 0, 0, 0, 101, 0, 0, 0, 0])), "value"),
        (_body_frame(bytes([1, 0x82, 0, 0, 1, 0, 0, 0, 0, 0, 7, 50, 0, 0, 0, 0])), "value"),
        (b"\x09\x01\x00", "cobs"),
    ],
)
def test_bad_frames_are_counted_by_reason(wire, reason):
    decoder = FrameDecoder()
    assert decoder.feed(wire) == []
    assert decoder.errors == {reason: 1}
    assert (decoder.frames_ok, decoder.frames_bad) == (0, 1)
    with pytest.raises(DecodeError) as excinfo:
        decode_frame(wire[:-1])
    assert excinfo.value.reason == reason


def test_hello_and_reply_of_another_version_still_decode():
    # Their layout is frozen across versions so that a mismatch can be reported.
    decoder = FrameDecoder()
    frames = decoder.feed(
        HelloReply("fw2").encode(version=2)
        + Hello(700).encode(version=9)
        + Heartbeat().encode(version=2)
    )
    assert frames == [Frame(HelloReply("fw2"), 0, 0, 2), Frame(Hello(700), 0, 0, 9)]
    assert decoder.errors == {"version": 1}


def test_invalid_messages_cannot_be_built():
    with pytest.raises(ValueError):
        RateCap(70000)
    with pytest.raises(ValueError):
        RateCap(100, region=0)  # "no region" is None, encoded as 0
    with pytest.raises(ValueError):
        Stop(42)
    with pytest.raises(ValueError):
        HelloReply("é")
    with pytest.raises(ValueError):
        HelloReply("x" * 33)
    with pytest.raises(ValueError):
        Status(True, 3, 2400, 2400, Attachment.FLAT, 101, None, WarningCode.NONE)
    with pytest.raises(ValueError):
        encode_frame(Heartbeat(), seq=256, ack=0)
    with pytest.raises(TypeError):
        RateCap(2400.0)


def test_attachment_labels():
    assert Attachment.MEDIUM_BALL.label == "medium-ball"
    assert Attachment.from_label("medium-ball") is Attachment.MEDIUM_BALL
    assert {Attachment.from_label(a.label) for a in Attachment} == set(Attachment)


def test_seq_covers_wraps():
    assert seq_covers(5, 5) and seq_covers(6, 5) and seq_covers(2, 250)
    assert not seq_covers(4, 5) and not seq_covers(250, 2)


# ----------------------------------------------------------------------- fuzzing


def _assert_valid(frames, decoder):
    for frame in frames:
        assert isinstance(frame, Frame)
        assert isinstance(frame.message, Message)
        assert type(frame.message) is MESSAGE_CLASSES[frame.message.TYPE]
        assert 0 <= frame.seq <= 255 and 0 <= frame.ack <= 255
        # Anything accepted re-encodes to a frame that decodes to itself.
        wire = frame.message.encode(seq=frame.seq, ack=frame.ack, version=frame.version)
        assert decode_frame(wire[:-1], expected_version=frame.version) == frame
    assert decoder.internal_errors == 0
    assert len(decoder._buffer) <= MAX_ENCODED_LEN


# Hypothesis spends most of its time per example on drawing, so each fuzz test draws
# one byte string and, where it needs structure, interprets it as a script: cheap to
# generate, still shrinkable to a minimal failing script.


@given(st.binary(max_size=300))
@settings(FUZZ)
@pytest.mark.fuzz
def test_fuzz_random_bytes(data):
    decoder = FrameDecoder()
    cut = len(data) // 3  # also exercise a frame split across two reads
    frames = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
    _assert_valid(frames, decoder)
    assert decoder.frames_ok == len(frames)


_TYPES = list(MessageType)


@given(st.binary(min_size=4, max_size=68))
@settings(FUZZ)
@pytest.mark.fuzz
def test_fuzz_bodies_with_a_valid_crc(data):
    """Random headers and payloads that pass COBS and CRC: the message parsers' turn."""
    version = data[0] if data[0] % 8 == 0 else PROTOCOL_VERSION
    msg_type = data[1] if data[1] % 10 == 9 else _TYPES[data[1] % len(_TYPES)]
    wire = _body_frame(bytes([version, msg_type]) + data[2:])
    decoder = FrameDecoder()
    frames = decoder.feed(wire)
    _assert_valid(frames, decoder)
    assert decoder.frames_ok + decoder.frames_bad == 1
    assert set(decoder.errors) <= {"type", "version", "length", "value"}


class _Script:
    """Reads a fuzz script byte by byte; an exhausted script reads as zeros."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def __bool__(self) -> bool:
        return self.pos < len(self.data)

    def byte(self) -> int:
        value = self.data[self.pos] if self else 0
        self.pos += 1
        return value

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def frame(self) -> bytes:
        message = EXAMPLES[self.byte() % len(EXAMPLES)]
        return message.encode(seq=self.byte(), ack=self.byte())


def mutated_stream(data: bytes) -> bytes:
    """Valid frames, mutated (bit flips, cuts, insertions, deletions) and spliced with
    garbage, as directed by ``data``."""
    script = _Script(data)
    pieces = []
    while script:
        wire = bytearray(script.frame())
        op = script.byte()
        pos = script.byte() % (len(wire) + 1)
        kind = op % 6
        if kind == 0:
            wire[pos % len(wire)] ^= 1 << (op >> 5)
        elif kind == 1:
            wire = wire[:pos]
        elif kind == 2:
            wire[pos:pos] = script.take(1 + op % 4)
        elif kind == 3:
            del wire[pos % len(wire)]
        elif kind == 4:
            pieces.append(script.take(op % 41))
        # kind 5: the frame stays intact
        pieces.append(bytes(wire))
    return b"".join(pieces)


@given(st.binary(min_size=1, max_size=80))
@settings(FUZZ)
@pytest.mark.fuzz
def test_fuzz_mutated_and_spliced_frames(data):
    stream = mutated_stream(data)
    decoder = FrameDecoder()
    cut = data[0] * len(stream) // 255
    frames = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
    _assert_valid(frames, decoder)


@given(st.binary(min_size=1, max_size=150))
@settings(FUZZ)
@pytest.mark.fuzz
def test_fuzz_intact_frames_survive_garbage_between_them(data):
    """Any garbage, then a 0x00, then a frame: the frame always comes through."""
    script = _Script(data)
    sent, pieces = [], []
    while script:
        garbage = script.take(script.byte() % 61)
        wire = script.frame()
        sent.append(wire)
        pieces += [garbage, b"\x00", wire]
    stream = b"".join(pieces)
    cut = data[0] * len(stream) // 255
    decoder = FrameDecoder()
    frames = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
    _assert_valid(frames, decoder)
    got = iter(f.message.encode(seq=f.seq, ack=f.ack) for f in frames)
    # The sent frames appear in order (garbage may, very rarely, decode to more).
    assert all(any(g == wire for g in got) for wire in sent)
