"""Wire codec of the UART link between gunguard and the gun's firmware (sans-IO).

This module only turns messages into bytes and bytes into messages: no ports, no
threads, no clocks, so the same code runs on the Pi, in the simulated firmware and
under a fuzzer. ``docs/serial-protocol.md`` is the normative description; the
constants here must match it.

A frame on the wire is ``COBS(header || payload || crc16) || 0x00``:

* header: ``version u8, type u8, seq u8, ack u8``;
* payload: fixed little-endian layout per message type;
* crc16: CRC-16/CCITT-FALSE over header and payload, little-endian.

COBS removes every 0x00 from the frame, so a 0x00 always ends a frame and a
receiver resynchronises at the next 0x00 after any garbage (the reason for COBS
over a sync byte, which may also occur inside data). :class:`FrameDecoder` never
raises: every malformed input is dropped and counted.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar, Self, TypeVar

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBBB")  # version, type, seq, ack
HEADER_LEN = HEADER.size
CRC_LEN = 2
MAX_PAYLOAD_LEN = 64
MAX_BODY_LEN = HEADER_LEN + MAX_PAYLOAD_LEN + CRC_LEN
# COBS adds one byte per started block of 254 data bytes; a body fits in one block.
MAX_ENCODED_LEN = MAX_BODY_LEN + 1
DELIMITER = b"\x00"
SEQ_MODULO = 256
FIRMWARE_ID_MAX_LEN = 32

# --------------------------------------------------------------------------- CRC


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC16_TABLE = _crc16_table()


def crc16_ccitt_false(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0 (check 0x29B1)."""
    table = _CRC16_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


# -------------------------------------------------------------------------- COBS


#: Why a received frame is dropped (docs/serial-protocol.md, §2.2): the counters that
#: ``gunguard status`` shows under ``link.errors``.
DECODE_ERROR_REASONS = ("oversize", "cobs", "length", "crc", "type", "version", "value")


class DecodeError(ValueError):
    """A frame that cannot be accepted; ``reason`` names the counter it goes to."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def cobs_encode(data: bytes | bytearray) -> bytes:
    """Consistent Overhead Byte Stuffing: the result contains no 0x00."""
    out = bytearray()
    code_index = 0
    out.append(0)  # placeholder for the first code byte
    code = 1
    for byte in data:
        if byte == 0:
            out[code_index] = code
            code_index = len(out)
            out.append(0)
            code = 1
            continue
        out.append(byte)
        code += 1
        if code == 0xFF:
            out[code_index] = code
            code_index = len(out)
            out.append(0)
            code = 1
    out[code_index] = code
    return bytes(out)


def cobs_decode(data: bytes | bytearray | memoryview) -> bytes:
    """Inverse of :func:`cobs_encode`; raises :class:`DecodeError` on a malformed block."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise DecodeError("cobs", f"zero code byte at {i}")
        end = i + code
        if end > n:
            raise DecodeError("cobs", f"code {code} at {i} runs past the end ({n})")
        block = data[i + 1 : end]
        if 0 in block:
            raise DecodeError("cobs", "zero byte inside a block")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# ------------------------------------------------------------------------- enums


class MessageType(enum.IntEnum):
    """Type byte of the header; bit 7 set means gun -> Pi."""

    HELLO = 0x01
    HEARTBEAT = 0x02
    RATE_CAP = 0x03
    STOP = 0x04
    WARN = 0x05
    RELEASE = 0x06
    HELLO_REPLY = 0x81
    STATUS = 0x82
    BUTTON = 0x83


# Types whose layout is frozen across protocol versions, so that a peer speaking
# another version can still be told (and can tell) which version it speaks.
VERSION_INDEPENDENT_TYPES = frozenset({MessageType.HELLO, MessageType.HELLO_REPLY})


class Attachment(enum.IntEnum):
    """Head fitted to the gun, as the firmware detects it."""

    NONE = 0
    FLAT = 1
    MEDIUM_BALL = 2
    LARGE_BALL = 3
    BULLET = 4
    FORK = 5
    CUSHION = 6
    UNKNOWN = 255  # a head is fitted but the firmware cannot tell which

    @property
    def label(self) -> str:
        """Name used in configs and scenarios, e.g. ``medium-ball``."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def from_label(cls, label: str) -> Attachment:
        return cls[label.upper().replace("-", "_")]


class ButtonId(enum.IntEnum):
    POWER = 1
    PLUS = 2
    MINUS = 3
    MODE = 4


class PressKind(enum.IntEnum):
    SHORT = 1
    LONG = 2


class StopReason(enum.IntEnum):
    """Why gunguard stops the motor (shown or logged by the firmware)."""

    RATE_LIMIT = 1
    FORCE_LIMIT = 2
    DOSE_LIMIT = 3
    SENSOR_MISMATCH = 4
    SENSOR_FAULT = 5
    NO_REGION = 6
    USER = 7
    SHUTDOWN = 8
    OTHER = 255


class WarningCode(enum.IntEnum):
    """Warning the firmware should show (LED, beep) until told otherwise."""

    NONE = 0
    DOSE_NEAR_LIMIT = 1
    RATE_NEAR_CAP = 2
    FORCE_HIGH = 3
    SENSOR_MISMATCH = 4
    LINK_DEGRADED = 5


class StatusFlags(enum.IntFlag):
    """Bits of ``Status.flags``; undefined bits are sent as 0 and ignored on receipt."""

    STOP_LATCHED = 0x01  # a stop is in force until the Pi sends RELEASE
    DEADMAN = 0x02  # the latch was set because the Pi went silent
    CAP_CLAMPED = 0x04  # the firmware is holding the rate below the user's setting
    CHARGING = 0x08
    OVERTEMP = 0x10


_E = TypeVar("_E", bound=enum.IntEnum)


def _enum_value(kind: type[_E], raw: int) -> _E:
    try:
        return kind(raw)
    except ValueError:
        raise DecodeError("value", f"{raw} is not a {kind.__name__}") from None


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name}={value} outside {low}..{high}")


# ---------------------------------------------------------------------- messages


class Message:
    """Base of all message payloads; subclasses are frozen slotted dataclasses."""

    __slots__ = ()
    TYPE: ClassVar[MessageType]
    FROM_GUN: ClassVar[bool]

    def pack(self) -> bytes:
        """The payload bytes (no header, no CRC)."""
        raise NotImplementedError

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        """Parse a payload; raises :class:`DecodeError` if it is not exactly this type."""
        raise NotImplementedError

    def encode(self, seq: int = 0, ack: int = 0, version: int = PROTOCOL_VERSION) -> bytes:
        """The complete wire frame, including the trailing 0x00 delimiter."""
        return encode_frame(self, seq=seq, ack=ack, version=version)


class _Empty(Message):
    """A message without payload."""

    __slots__ = ()

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        if payload:
            raise DecodeError("length", f"{cls.TYPE.name} carries no payload, got {len(payload)}")
        return cls()


def _unpack_fixed(cls: type[Message], layout: struct.Struct, payload: bytes) -> tuple[int, ...]:
    if len(payload) != layout.size:
        raise DecodeError("length", f"{cls.TYPE.name}: {len(payload)} bytes, not {layout.size}")
    return layout.unpack(payload)


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Pi -> gun: start of the handshake; tells the firmware its dead-man timeout."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    FROM_GUN: ClassVar[bool] = False
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<H")

    deadman_ms: int = 500

    def __post_init__(self) -> None:
        _check_range("deadman_ms", self.deadman_ms, 0, 0xFFFF)

    def pack(self) -> bytes:
        return self._LAYOUT.pack(self.deadman_ms)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        (deadman_ms,) = _unpack_fixed(cls, cls._LAYOUT, payload)
        return cls(deadman_ms)


@dataclass(frozen=True, slots=True)
class Heartbeat(_Empty):
    """Pi -> gun: "I am alive"; feeds the firmware's dead-man timer."""

    TYPE: ClassVar[MessageType] = MessageType.HEARTBEAT
    FROM_GUN: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class RateCap(Message):
    """Pi -> gun: highest percussion rate allowed now (0 = the motor must not run)."""

    TYPE: ClassVar[MessageType] = MessageType.RATE_CAP
    FROM_GUN: ClassVar[bool] = False
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<HB")

    max_ppm: int
    region: int | None = None  # opaque region code for display; None = no region

    def __post_init__(self) -> None:
        _check_range("max_ppm", self.max_ppm, 0, 0xFFFF)
        if self.region is not None:
            _check_range("region", self.region, 1, 0xFF)

    def pack(self) -> bytes:
        return self._LAYOUT.pack(self.max_ppm, self.region or 0)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        max_ppm, region = _unpack_fixed(cls, cls._LAYOUT, payload)
        return cls(max_ppm, region or None)


@dataclass(frozen=True, slots=True)
class Stop(Message):
    """Pi -> gun: stop the motor now and latch the stop until :class:`Release`."""

    TYPE: ClassVar[MessageType] = MessageType.STOP
    FROM_GUN: ClassVar[bool] = False
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<B")

    reason: StopReason

    def __post_init__(self) -> None:
        StopReason(self.reason)  # ValueError for a code the spec does not define

    def pack(self) -> bytes:
        return self._LAYOUT.pack(self.reason)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        (reason,) = _unpack_fixed(cls, cls._LAYOUT, payload)
        return cls(_enum_value(StopReason, reason))


@dataclass(frozen=True, slots=True)
class Warn(Message):
    """Pi -> gun: warning to show until replaced; ``WarningCode.NONE`` clears it.

    (Not called ``Warning`` so as not to shadow the builtin.)
    """

    TYPE: ClassVar[MessageType] = MessageType.WARN
    FROM_GUN: ClassVar[bool] = False
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<B")

    code: WarningCode

    def __post_init__(self) -> None:
        WarningCode(self.code)

    def pack(self) -> bytes:
        return self._LAYOUT.pack(self.code)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        (code,) = _unpack_fixed(cls, cls._LAYOUT, payload)
        return cls(_enum_value(WarningCode, code))


@dataclass(frozen=True, slots=True)
class Release(_Empty):
    """Pi -> gun: clear the latched stop; the motor may run again (up to the cap)."""

    TYPE: ClassVar[MessageType] = MessageType.RELEASE
    FROM_GUN: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class HelloReply(Message):
    """Gun -> Pi: answer to :class:`Hello`; the header carries the firmware's version."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO_REPLY
    FROM_GUN: ClassVar[bool] = True

    firmware_id: str

    def __post_init__(self) -> None:
        if len(self.firmware_id) > FIRMWARE_ID_MAX_LEN or not all(
            0x20 <= ord(c) <= 0x7E for c in self.firmware_id
        ):
            raise ValueError(f"firmware_id must be <= {FIRMWARE_ID_MAX_LEN} printable ASCII")

    def pack(self) -> bytes:
        raw = self.firmware_id.encode("ascii")
        return bytes([len(raw)]) + raw

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        if not payload or len(payload) != 1 + payload[0]:
            raise DecodeError("length", "HELLO_REPLY length byte does not match the payload")
        raw = payload[1:]
        if len(raw) > FIRMWARE_ID_MAX_LEN or any(not 0x20 <= b <= 0x7E for b in raw):
            raise DecodeError("value", "firmware id is not printable ASCII of <= 32 chars")
        return cls(raw.decode("ascii"))


_NO_FLAGS = StatusFlags(0)
BATTERY_UNKNOWN = 0xFF
TEMPERATURE_UNKNOWN = -0x8000


@dataclass(frozen=True, slots=True)
class Status(Message):
    """Gun -> Pi: what the firmware does and measures, sent every status period."""

    TYPE: ClassVar[MessageType] = MessageType.STATUS
    FROM_GUN: ClassVar[bool] = True
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BBHHBBhBB")

    motor_on: bool  # the firmware drives the motor
    speed_level: int  # the user's speed setting (0..255, firmware-defined steps)
    reported_ppm: int  # percussions per minute the firmware measures
    cap_ppm: int  # the rate cap in force on the firmware (echo of RATE_CAP)
    attachment: Attachment
    battery_pct: int | None  # 0..100, None = unknown
    temperature_tenths_c: int | None  # motor/board temperature in 0.1 degC, None = unknown
    warning: WarningCode  # warning being shown (echo of WARN)
    flags: StatusFlags = _NO_FLAGS

    def __post_init__(self) -> None:
        _check_range("speed_level", self.speed_level, 0, 0xFF)
        _check_range("reported_ppm", self.reported_ppm, 0, 0xFFFF)
        _check_range("cap_ppm", self.cap_ppm, 0, 0xFFFF)
        if self.battery_pct is not None:
            _check_range("battery_pct", self.battery_pct, 0, 100)
        if self.temperature_tenths_c is not None:
            _check_range("temperature_tenths_c", self.temperature_tenths_c, -0x7FFF, 0x7FFF)
        _check_range("flags", int(self.flags), 0, 0xFF)
        Attachment(self.attachment)
        WarningCode(self.warning)

    @property
    def stop_latched(self) -> bool:
        return bool(self.flags & StatusFlags.STOP_LATCHED)

    def pack(self) -> bytes:
        return self._LAYOUT.pack(
            int(self.motor_on),
            self.speed_level,
            self.reported_ppm,
            self.cap_ppm,
            self.attachment,
            BATTERY_UNKNOWN if self.battery_pct is None else self.battery_pct,
            TEMPERATURE_UNKNOWN if self.temperature_tenths_c is None else self.temperature_tenths_c,
            self.warning,
            self.flags,
        )

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        motor, level, ppm, cap, attachment, battery, temp, warning, flags = _unpack_fixed(
            cls, cls._LAYOUT, payload
        )
        if motor > 1:
            raise DecodeError("value", f"motor_on={motor} is not 0 or 1")
        if battery != BATTERY_UNKNOWN and battery > 100:
            raise DecodeError("value", f"battery_pct={battery}")
        return cls(
            motor_on=bool(motor),
            speed_level=level,
            reported_ppm=ppm,
            cap_ppm=cap,
            attachment=_enum_value(Attachment, attachment),
            battery_pct=None if battery == BATTERY_UNKNOWN else battery,
            temperature_tenths_c=None if temp == TEMPERATURE_UNKNOWN else temp,
            warning=_enum_value(WarningCode, warning),
            flags=StatusFlags(flags),
        )


@dataclass(frozen=True, slots=True)
class Button(Message):
    """Gun -> Pi: a button was pressed (reported once, never retransmitted)."""

    TYPE: ClassVar[MessageType] = MessageType.BUTTON
    FROM_GUN: ClassVar[bool] = True
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB")

    button: ButtonId
    kind: PressKind

    def __post_init__(self) -> None:
        ButtonId(self.button)
        PressKind(self.kind)

    def pack(self) -> bytes:
        return self._LAYOUT.pack(self.button, self.kind)

    @classmethod
    def unpack(cls, payload: bytes) -> Self:
        button, kind = _unpack_fixed(cls, cls._LAYOUT, payload)
        return cls(_enum_value(ButtonId, button), _enum_value(PressKind, kind))


MESSAGE_CLASSES: dict[MessageType, type[Message]] = {
    cls.TYPE: cls
    for cls in (Hello, Heartbeat, RateCap, Stop, Warn, Release, HelloReply, Status, Button)
}

# ------------------------------------------------------------------------ frames


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: the message plus the header fields the link layer uses."""

    message: Message
    seq: int
    ack: int
    version: int = PROTOCOL_VERSION


def encode_frame(message: Message, seq: int, ack: int, version: int = PROTOCOL_VERSION) -> bytes:
    """``COBS(header || payload || crc16_le) || 0x00``."""
    for name, value in (("seq", seq), ("ack", ack), ("version", version)):
        _check_range(name, value, 0, 0xFF)
    payload = message.pack()
    if len(payload) > MAX_PAYLOAD_LEN:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_LEN}")
    body = HEADER.pack(version, message.TYPE, seq, ack) + payload
    body += crc16_ccitt_false(body).to_bytes(2, "little")
    return cobs_encode(body) + DELIMITER


def decode_frame(encoded: bytes | bytearray, expected_version: int = PROTOCOL_VERSION) -> Frame:
    """Decode one COBS-encoded frame (without its delimiter); raises :class:`DecodeError`."""
    if len(encoded) > MAX_ENCODED_LEN:
        raise DecodeError("oversize", f"{len(encoded)} encoded bytes")
    body = cobs_decode(encoded)
    if len(body) < HEADER_LEN + CRC_LEN:
        raise DecodeError("length", f"frame of {len(body)} bytes is shorter than header + CRC")
    content, crc_bytes = body[:-CRC_LEN], body[-CRC_LEN:]
    if crc16_ccitt_false(content) != int.from_bytes(crc_bytes, "little"):
        raise DecodeError("crc", "checksum mismatch")
    version, type_byte, seq, ack = HEADER.unpack_from(content)
    try:
        msg_type = MessageType(type_byte)
    except ValueError:
        raise DecodeError("type", f"unknown message type 0x{type_byte:02x}") from None
    if version != expected_version and msg_type not in VERSION_INDEPENDENT_TYPES:
        raise DecodeError("version", f"version {version}, expected {expected_version}")
    message = MESSAGE_CLASSES[msg_type].unpack(content[HEADER_LEN:])
    return Frame(message=message, seq=seq, ack=ack, version=version)


class FrameDecoder:
    """Streaming decoder: bytes in, frames out, garbage dropped and counted.

    Resynchronises at every 0x00. A run of more than ``MAX_ENCODED_LEN`` bytes without
    a delimiter is discarded up to the next 0x00 (bounded memory). Empty frames
    (0x00 0x00, used to flush a receiver) are ignored without being counted.
    """

    def __init__(self, expected_version: int = PROTOCOL_VERSION) -> None:
        self.expected_version = expected_version
        self.frames_ok = 0
        self.frames_bad = 0
        self.errors: Counter[str] = Counter()  # reason -> count of bad frames
        self.internal_errors = 0  # bugs caught by the last-resort guard (must stay 0)
        self._buffer = bytearray()
        self._discarding = False

    def reset(self) -> None:
        """Forget a partial frame (the port was reopened)."""
        self._buffer.clear()
        self._discarding = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Consume ``data``; return the frames it completed. Never raises."""
        frames: list[Frame] = []
        try:
            view = bytes(data)
            start = 0
            while start < len(view):
                end = view.find(0, start)
                if end < 0:
                    self._append(view, start, len(view))
                    break
                self._append(view, start, end)
                self._complete(frames)
                start = end + 1
        except Exception:  # last resort: a decoder bug must not kill the link thread
            log.exception("serial frame decoder failed; buffer discarded")
            self.internal_errors += 1
            self.reset()
        return frames

    def _append(self, data: bytes, start: int, end: int) -> None:
        if self._discarding or start == end:
            return
        if len(self._buffer) + (end - start) > MAX_ENCODED_LEN:
            self._reject("oversize")
            self._buffer.clear()
            self._discarding = True
            return
        self._buffer += data[start:end]

    def _complete(self, frames: list[Frame]) -> None:
        if self._discarding:
            self._discarding = False
            return
        if not self._buffer:
            return
        try:
            frame = decode_frame(self._buffer, self.expected_version)
        except DecodeError as exc:
            self._reject(exc.reason)
        else:
            self.frames_ok += 1
            frames.append(frame)
        finally:
            self._buffer.clear()

    def _reject(self, reason: str) -> None:
        self.frames_bad += 1
        self.errors[reason] += 1


def seq_covers(ack: int, seq: int) -> bool:
    """True if ``ack`` is ``seq`` or later in 8-bit serial-number arithmetic."""
    return (ack - seq) % SEQ_MODULO < SEQ_MODULO // 2


#: RATE_CAP's ``region`` byte: a fixed code per body region (docs/serial-protocol.md,
#: §5.11), for the firmware's display. 0 = no region selected. Codes are never reused.
REGION_CODES: dict[str, int] = {
    "calf-left": 1,
    "calf-right": 2,
    "achilles-left": 3,
    "achilles-right": 4,
    "heel-left": 5,
    "heel-right": 6,
    "foot-left": 7,
    "foot-right": 8,
    "shin-left": 9,
    "shin-right": 10,
    "quadriceps-left": 11,
    "quadriceps-right": 12,
    "hamstrings-left": 13,
    "hamstrings-right": 14,
    "glutes-left": 15,
    "glutes-right": 16,
    "forearm-left": 17,
    "forearm-right": 18,
    "upper-arm-left": 19,
    "upper-arm-right": 20,
    "shoulder-left": 21,
    "shoulder-right": 22,
    "upper-back": 23,
    "lower-back": 24,
    "chest": 25,
    "face": 26,
    "head": 27,
    "neck": 28,
    "throat": 29,
    "knee-back-left": 30,
    "knee-back-right": 31,
    "groin-left": 32,
    "groin-right": 33,
    "inner-thigh-left": 34,
    "inner-thigh-right": 35,
    "armpit-left": 36,
    "armpit-right": 37,
    "inner-upper-arm-left": 38,
    "inner-upper-arm-right": 39,
    "inner-elbow-left": 40,
    "inner-elbow-right": 41,
}
