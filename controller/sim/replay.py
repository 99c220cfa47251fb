"""Replaying a recorded sensor trace through the supervisor in virtual time.

The bench's simulated gun plays the trace's tach edges at their exact times and
presents its raw force readings (each held until the next); the operator's recorded
actions are applied at their times. The supervisor is assembled from the replay's
config, which may differ from the one recorded: that is how a config is checked
against a person's own gun.

The trace is what the recorded motor did under the recorded supervisor. Where the
replay's supervisor decides power differently, :class:`MotorGate` decides which
recorded pulses still happen:

* pulses while the recorded motor had power play only while the replay's motor has
  power too (a replay that cuts sooner stops the motor at once: no spin-down);
* pulses after the recording cut power (the spin-down, a welded switch) play when the
  replay also had power at that cut, within ``max_loop_gap_ms`` before it (a force
  trip is judged at a tick, and the two loops tick at different moments);
* pulses with no recorded power before them (a motor running without power) play.
"""

from __future__ import annotations

import bisect

from gunguard.core import events
from gunguard.core.events import Event
from gunguard.sim.bench import Bench
from gunguard.sim.trace import RESET, SELECT, STOP, Trace


class MotorGate:
    """Whether a recorded pulse at ``t`` still happens in the replay (see the module)."""

    def __init__(self, trace: Trace, bench: Bench) -> None:
        self._live_t = [t for t, _ in trace.power]
        self._live_on = [on for _, on in trace.power]
        self._replay_t: list[float] = []
        self._replay_on: list[bool] = []
        self._bench = bench
        self._tolerance_s = bench.cfg.loop.max_loop_gap_ms / 1000.0
        bench.bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.kind == events.POWER:
            self._replay_t.append(event.t)
            self._replay_on.append(bool(event.fields["on"]))

    def _replay_powered_at(self, t: float) -> bool:
        i = bisect.bisect_right(self._replay_t, t) - 1
        return i >= 0 and self._replay_on[i]

    def __call__(self, t: float) -> bool:
        i = bisect.bisect_right(self._live_t, t) - 1
        if i < 0:
            return True  # the recorded motor turned with no power ever given
        if self._live_on[i]:
            return self._bench.sim.powered(t)
        cut = self._live_t[i]
        return self._replay_powered_at(cut) or self._replay_powered_at(cut - self._tolerance_s)


def play_trace(bench: Bench, trace: Trace) -> None:
    """Replay ``trace`` on ``bench`` to its end (the bench's clock starts at 0)."""
    bench.sim.play_edges(trace.edges, MotorGate(trace, bench))
    bench.sim.play_raw(trace.forces)
    for t, kind, region in trace.actions:
        bench.run_until(t)
        if kind == SELECT:
            bench.select(region)
        elif kind == STOP:
            bench.select(None)
        elif kind == RESET:
            bench.reset()
    bench.run_until(max(trace.duration, bench.now))


def _recording_unpowered_while_replay_powered(trace: Trace, bench: Bench) -> float | None:
    """The first recorded cut after which the replay kept power for a while (0.5 s)."""
    replay = [(e.t, bool(e.fields["on"])) for e in bench.events if e.kind == events.POWER]

    def replay_on(t: float) -> bool:
        i = bisect.bisect_right([c for c, _ in replay], t) - 1
        return i >= 0 and replay[i][1]

    live = trace.power
    for i, (cut, on) in enumerate(live):
        if on:
            continue
        until = live[i + 1][0] if i + 1 < len(live) else trace.duration
        probe = min(cut + 0.5, until)
        if probe > cut and replay_on(probe):
            return cut
    return None


def notes(trace: Trace, bench: Bench) -> list[str]:
    """What a person comparing the replay with the live run should know."""
    found = []
    header = trace.header
    cfg = bench.cfg
    ppp = cfg.hardware.tachometer.pulses_per_percussion
    if trace.pulses_per_percussion != ppp:
        found.append(
            f"recorded with pulses_per_percussion {trace.pulses_per_percussion}, replayed with "
            f"{ppp}: every rate reads {trace.pulses_per_percussion / ppp:g}x the recorded one"
        )
    cal = header["calibration"]
    fs = cfg.hardware.force_sensor
    if (cal["zero"], cal["newtons_per_unit"]) != (fs.zero, fs.newtons_per_unit):
        found.append(
            f"recorded with calibration zero {cal['zero']:g}, newtons_per_unit "
            f"{cal['newtons_per_unit']:g}; replayed with {fs.zero:g}, {fs.newtons_per_unit:g}: "
            "the same raw readings are other forces"
        )
    for start, until, dropped in trace.gaps:
        found.append(
            f"{dropped} samples were dropped between {start:.3f} s and {until:.3f} s (the "
            "recorder fell behind): the replay misses tach edges and holds the force there"
        )
    if trace.end is None:
        found.append("no end line: the recording was cut short; replayed to its last line")
    unpowered = _recording_unpowered_while_replay_powered(trace, bench)
    if unpowered is not None:
        found.append(
            f"from {unpowered:.3f} s the recorded motor had no power but the replay's had: the "
            "trace has no pulses for it there (a tach_stall from then on is the trace ending, "
            "not the config)"
        )
    recorded = ", ".join(reason for _, reason in trace.trips) or "none"
    replayed = ", ".join(str(r) for r in bench.trips()) or "none"
    found.append(f"recorded trips: {recorded}; replayed: {replayed}")
    return found
