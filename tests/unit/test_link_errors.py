"""Bad frames are dropped silently (§2.2) but never hidden: the counters and the
rate-limited log line that reports their growth (virtual time, no port)."""

from __future__ import annotations

from gunguard.link.protocol import DECODE_ERROR_REASONS, FrameDecoder, Heartbeat, Status
from gunguard.link.serial_link import ERROR_COUNTERS, ErrorReport, LinkEndpoint
from gunguard.sim.firmware import SimFirmwareEndpoint


def counters(**grown: int) -> dict[str, int]:
    return {name: grown.get(name, 0) for name in ("frames_ok", *ERROR_COUNTERS)}


def test_the_decoder_reasons_are_the_documented_ones():
    """Every reason a frame can be dropped for has its own counter, always present."""
    assert set(DECODE_ERROR_REASONS) == {
        "oversize", "cobs", "length", "crc", "type", "version", "value",
    }  # fmt: skip
    keys = LinkEndpoint().counters()
    assert {f"bad_{r}" for r in DECODE_ERROR_REASONS} <= set(keys)
    assert set(ERROR_COUNTERS) <= set(keys)


def test_each_kind_of_bad_frame_lands_in_its_own_counter():
    pi = LinkEndpoint()
    good = SimFirmwareEndpoint().status().encode(seq=1, ack=0)
    bad_crc = bytearray(good)
    bad_crc[-2] = bad_crc[-2] ^ 0x01 or 0x02  # the CRC's last byte (never a 0x00)
    pi.feed(bytes(bad_crc), 0.0)
    pi.feed(b"\x02\x01\x00", 0.0)  # COBS says two bytes, then the delimiter: too short
    pi.feed(b"\x05\x01" + b"\x00", 0.0)  # a code byte running past the end
    pi.feed(b"\x01" * 80 + b"\x00", 0.0)  # no delimiter within 71 bytes
    pi.feed(Heartbeat().encode(seq=2, ack=0, version=2), 0.0)  # not version 1
    pi.feed(Heartbeat().encode(seq=3, ack=0), 0.0)  # the Pi's own type: a loopback
    got = pi.counters()
    assert got["bad_crc"] == 1
    assert got["bad_length"] == 1
    assert got["bad_cobs"] == 1
    assert got["bad_oversize"] == 1
    assert got["bad_version"] == 1
    assert got["frames_unexpected"] == 1
    assert got["frames_bad"] == 5
    assert isinstance(FrameDecoder().feed(good)[0].message, Status)


def test_the_first_growth_is_reported_at_once_then_at_most_once_per_interval():
    report = ErrorReport(interval_s=10.0)
    assert report.check(counters(), 0.0) is None, "nothing grew: nothing to say"
    text, fields = report.check(counters(bad_crc=3, frames_ok=50), 1.0)
    assert text == (
        "gun firmware link errors since start: bad_crc +3 (totals: bad_crc 3; frames ok 50)"
    )
    assert fields == {"GUNGUARD_EVENT": "link_errors", "GUNGUARD_BAD_CRC": "3"}
    # More errors within the interval: held back, then summed into one line.
    assert report.check(counters(bad_crc=4), 5.0) is None
    assert report.check(counters(bad_crc=9, frames_lost=2), 10.9) is None
    text, fields = report.check(counters(bad_crc=9, frames_lost=2, frames_ok=90), 11.0)
    assert text == (
        "gun firmware link errors in the last 10 s: bad_crc +6, frames_lost +2 "
        "(totals: bad_crc 9, frames_lost 2; frames ok 90)"
    )
    assert fields["GUNGUARD_FRAMES_LOST"] == "2"
    # Quiet again: no line, however long.
    assert report.check(counters(bad_crc=9, frames_lost=2), 100.0) is None
    text, _ = report.check(counters(bad_crc=9, frames_lost=2, bad_cobs=1), 101.0)
    assert text.startswith("gun firmware link errors in the last 90 s: bad_cobs +1 ")


def test_counters_that_are_not_errors_never_make_a_line():
    report = ErrorReport()
    busy = {**counters(frames_ok=1000), "frames_sent": 900, "commands_sent": 12, "connects": 3}
    assert report.check(busy, 0.0) is None
