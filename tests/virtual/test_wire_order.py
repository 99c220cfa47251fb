"""What gunguard writes on the UART, frame by frame, against docs/serial-protocol.md §10.

The supervisor, the firmware guard and the Pi's ``LinkEndpoint`` run in virtual time
against the simulated firmware; every frame the Pi writes is decoded and recorded.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from gunguard.config import loader as configfile
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.link.protocol import (
    REGION_CODES,
    ButtonId,
    FrameDecoder,
    Heartbeat,
    Hello,
    Message,
    RateCap,
    Release,
    Stop,
    Warn,
)
from gunguard.sim.bench import Bench

DOC = Path(__file__).resolve().parents[2] / "docs" / "serial-protocol.md"

CONFIG = """
limits:
  bands: [{up_to_ppm: 2400, max_minutes: 5.0, min_minutes: 2.0}]
regions:
  calf-left: {max_ppm: 2400}
  calf-right: {max_ppm: 2400}
serial: {required: true, heartbeat_ms: 100, heartbeat_timeout_ms: 500}
"""


class Recorder:
    """Decodes and keeps every frame the Pi's endpoint writes: (time, seq, message)."""

    def __init__(self, bench: Bench) -> None:
        assert bench.link is not None
        self.frames: list[tuple[float, int, Message]] = []
        self._decoder = FrameDecoder()
        self._outgoing = bench.link.outgoing
        bench.link.outgoing = self._record  # type: ignore[method-assign]

    def _record(self, now: float) -> bytes:
        data = self._outgoing(now)
        for frame in self._decoder.feed(data):
            self.frames.append((now, frame.seq, frame.message))
        return data

    def commands(self, since: float = 0.0) -> list[str]:
        """Every frame but HEARTBEATs, as §10 writes them."""
        return [
            describe(m) for t, _, m in self.frames if t >= since and not isinstance(m, Heartbeat)
        ]


def describe(message: Message) -> str:
    """A frame as docs/serial-protocol.md §10 names it."""
    if isinstance(message, Hello):
        return f"HELLO(deadman_ms={message.deadman_ms})"
    if isinstance(message, RateCap):
        return f"RATE_CAP({message.max_ppm}, region {message.region or 0})"
    if isinstance(message, Stop):
        return f"STOP({message.reason.name.lower().replace('_', ' ')})"
    if isinstance(message, Warn):
        return f"WARN({message.code.name.lower().replace('_', ' ')})"
    return message.TYPE.name


def documented_session() -> list[str]:
    """The Pi's frames of §10's session, in order, without its HEARTBEAT line."""
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index("## 10. A session") :]
    block = block[block.index("```") + 3 :]
    block = block[: block.index("```")]
    frames = []
    for line in block.splitlines():
        if "------>" not in line:
            continue
        pi_side = line.split("------>")[0]
        for name, args in re.findall(
            r"\b(HELLO|HEARTBEAT|RATE_CAP|STOP|WARN|RELEASE)\b(\([^)]*\))?", pi_side
        ):
            if name != "HEARTBEAT":
                frames.append(name + args)
    return frames


def config(text: str) -> GunguardConfig:
    data, lines = configfile.parse_yaml(text, "wire.yaml")
    return configfile.validate(data, "wire.yaml", lines)


def make_bench() -> Bench:
    return Bench(config(CONFIG), seed=5)


def test_the_session_on_the_wire_is_the_documented_one():
    bench = make_bench()
    wire = Recorder(bench)
    fw = bench.firmware
    assert fw is not None
    bench.run(0.5)
    assert fw.region is None and fw.stop_latched and fw.cap_ppm == 0
    assert bench.select("calf-left") is None
    bench.run(0.3)
    fw.press(ButtonId.POWER)
    fw.motor_on = True
    bench.gun(ppm=2380, force_n=30)
    bench.run(1.0)
    assert fw.region == REGION_CODES["calf-left"] and fw.motor_on
    assert bench.select("calf-right") is None
    bench.run(0.3)
    assert fw.region == REGION_CODES["calf-right"] and fw.motor_on and bench.power_on
    bench.gun(force_n=150)  # far over 90 N: overforce
    bench.run(1.0)
    assert bench.trips() == ["overforce"]
    assert bench.guard is not None
    bench.guard.shutdown()
    bench.run(0.3)
    assert fw.last_stop_reason is not None and fw.last_stop_reason.name == "SHUTDOWN"

    assert wire.commands() == documented_session()
    # One write each: the cap and RELEASE, the STOP and cap 0 (consecutive seq, same time).
    frames = wire.frames
    for i, (t, seq, message) in enumerate(frames):
        if isinstance(message, Release):
            t0, seq0, before = frames[i - 1]
            assert isinstance(before, RateCap) and before.max_ppm > 0
            assert (t0, (seq0 + 1) % 256) == (t, seq)
    # HEARTBEATs fill the idle time: never 100 ms without a frame while connected.
    times = [t for t, _, _ in frames]
    assert max(b - a for a, b in itertools.pairwise(times)) <= 0.1 + 0.002 + 1e-9


def test_every_rate_cap_carries_the_armed_region_or_zero_when_disarmed():
    bench = make_bench()
    wire = Recorder(bench)
    bench.run(0.5)
    t = bench.now
    assert bench.select("calf-left") is None
    bench.run(0.3)
    assert wire.commands(since=t) == ["RATE_CAP(2400, region 1)", "RELEASE"]
    t = bench.now
    bench.select(None)  # disarmed: stop first, then cap 0 with no region
    bench.run(0.3)
    assert wire.commands(since=t) == ["STOP(no region)", "RATE_CAP(0, region 0)"]
    t = bench.now
    assert bench.select("calf-right") is None
    bench.run(0.3)
    assert wire.commands(since=t) == ["RATE_CAP(2400, region 2)", "RELEASE"]
    # A reload that lowers the armed region's cap: the new cap at once, nothing else.
    tighter = config(CONFIG.replace("calf-right: {max_ppm: 2400}", "calf-right: {max_ppm: 2000}"))
    t = bench.now
    bench.supervisor.configure(resolve_limits(tighter), "tighter")
    bench.run(0.3)
    assert bench.power_on and bench.supervisor.region == "calf-right"
    assert wire.commands(since=t) == ["RATE_CAP(2000, region 2)"]
    assert bench.firmware is not None and bench.firmware.cap_ppm == 2000
    # A reload that leaves the cap alone sends nothing.
    t = bench.now
    bench.supervisor.configure(resolve_limits(tighter), "same")
    bench.run(0.3)
    assert wire.commands(since=t) == []
