"""Recording sensor traces and replaying them, in virtual time.

A session recorded on the bench replays to the same events (to the trace's microsecond
resolution), a trace written by hand (the documented format) replays through any
config, bad traces are refused with file, line and key, and a full queue drops samples
instead of blocking. The real-time round trip is in tests/realtime/test_live_recording.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gunguard.config.loader import ConfigError
from gunguard.core import events
from gunguard.core.clock import VirtualClock
from gunguard.sim.bench import DEFAULT_START_WALL, Bench
from gunguard.sim.replay import notes, play_trace
from gunguard.sim.scenario import play, validate_scenario
from gunguard.sim.simulate import replay
from gunguard.sim.trace import FORMAT, TraceRecorder, read_trace

CAPPED = {"regions": {"calf-left": {"max_ppm": 2400}, "calf-right": {}}}

SESSION = {
    "duration": 4.6,
    "seed": 5,
    "steps": [
        {"at": 0.2, "region": "calf-left"},
        {"at": 0.2, "gun": {"ppm": 2200, "force_n": 30}},
        {"at": 1.0, "gun": {"ppm": 2700}},  # overspeed
        {"at": 1.5, "reset": True, "gun": {"ppm": 2200}},
        {"at": 1.6, "region": "neck"},  # refused
        {"at": 1.7, "region": "calf-left"},
        {"at": 2.4, "gun": {"force_pattern": {"high_n": 150, "period_ms": 130, "high_ms": 60}}},
        {"at": 3.0, "reset": True, "gun": {"force_n": 25}},
        {"at": 4.0, "region": "calf-right"},  # (a second after the last burst)
        {"at": 4.4, "region": None},  # a stop
    ],
}


def record(tmp_path: Path, config, scenario: dict, **kwargs) -> tuple[Bench, Path]:
    """Play ``scenario`` on a bench whose sensors are recorded, as ``run --record`` does."""
    path = tmp_path / "trace.jsonl"
    clock = VirtualClock(0.0, DEFAULT_START_WALL)
    recorder = TraceRecorder(path, config, clock, config="capped", **kwargs)
    bench = Bench(config, seed=scenario.get("seed", 0), tap=recorder, clock=clock)
    bench.bus.subscribe(recorder.on_event)
    play(bench, validate_scenario(scenario, "<test>"))
    recorder.stopping()
    bench.close()
    recorder.close()
    return bench, path


def outcome(bench: Bench) -> list[tuple]:
    keep = (events.POWER, events.TRIP, events.REGION, events.RESET, events.REFUSED)
    return [
        (e.kind, e.fields.get("on", e.fields.get("reason", e.fields.get("region"))))
        for e in bench.events
        if e.kind in keep
    ]


def test_a_recorded_session_replays_to_the_same_events(tmp_path, cfg):
    config = cfg(**CAPPED)
    live, path = record(tmp_path, config, SESSION)
    assert live.trips() == ["overspeed", "overforce"]
    trace = read_trace(path)
    assert trace.end == pytest.approx(4.6)
    assert [kind for _, kind, _ in trace.actions] == [
        "select",
        "stop",  # the reset disarmed
        "reset",
        "select",  # neck: refused, so an attempt
        "select",
        "stop",
        "reset",
        "select",
        "stop",
    ]
    replayed = Bench(config)
    play_trace(replayed, trace)
    assert outcome(replayed) == outcome(live)
    times = [e.t for e in replayed.events if e.kind == events.TRIP]
    assert times == pytest.approx([e.t for e in live.events if e.kind == events.TRIP], abs=2e-6)
    for region, dose in live.summary()["regions"].items():
        again = replayed.summary()["regions"][region]
        assert again["contact_seconds"] == pytest.approx(dose["contact_seconds"], abs=2e-3)
        assert again["dose"] == pytest.approx(dose["dose"], abs=1e-4)


def test_the_header_says_how_to_read_the_rest(tmp_path, cfg):
    _, path = record(tmp_path, cfg(**CAPPED), {"duration": 0.5})
    header = json.loads(path.read_text().splitlines()[0])
    assert header["k"] == "header"
    assert header["format"] == FORMAT == "gunguard-trace/1"
    assert header["pulses_per_percussion"] == 1
    assert header["calibration"] == {
        "adc": "mcp3008",
        "zero": 0.05,
        "newtons_per_unit": 300.0,
        "valid_min": 0.02,
        "valid_max": 0.98,
    }
    assert header["force"] == "changes"
    assert header["start_wall"] == "2026-11-20T08:00:00+00:00"
    assert len(header["config_hash"]) == 16


def test_force_is_recorded_only_when_it_changes(tmp_path, cfg):
    _, path = record(tmp_path, cfg(**CAPPED), {"duration": 2.0})
    forces = [line for line in path.read_text().splitlines() if '"k":"force"' in line]
    assert len(forces) == 1  # 2000 ticks of a gun lying still: one reading


def write_trace(path: Path, *lines: dict, header: dict | None = None) -> Path:
    head = {
        "k": "header",
        "format": "gunguard-trace/1",
        "pulses_per_percussion": 1,
        "calibration": {"adc": "mcp3008", "zero": 0.05, "newtons_per_unit": 300.0},
        **(header or {}),
    }
    path.write_text("".join(json.dumps(obj) + "\n" for obj in (head, *lines)))
    return path


def hand_written(path: Path, period_s: float) -> Path:
    """What another tool could write: a person's gun at a steady rate, pressing about
    40 N (two ADC codes apart: a reading that never changes is a frozen sensor)."""
    codes = (round((0.05 + 40 / 300) * 1023), round((0.05 + 40 / 300) * 1023) + 2)
    lines: list[dict] = [
        {"k": "force", "t": round(k * 0.01, 6), "raw": codes[k % 2] / 1023} for k in range(250)
    ]
    lines.append({"k": "select", "t": 0.1, "region": "calf-left"})
    t = 0.3
    while t < 2.0:
        lines += [
            {"k": "tach", "t": round(t, 6), "active": True},
            {"k": "tach", "t": round(t + period_s / 2, 6), "active": False},
        ]
        t += period_s
    lines.append({"k": "power", "t": 0.1, "on": True})
    lines.append({"k": "end", "t": 2.5})
    return write_trace(path, *lines, header={"config": "default"})


def test_a_hand_written_trace_checks_a_config(tmp_path, cfg):
    trace = read_trace(hand_written(tmp_path / "gun.jsonl", 0.0235))  # 2553 ppm
    loose = Bench(cfg(regions={"calf-left": {}}))  # capped at 3200
    play_trace(loose, trace)
    assert loose.trips() == []
    assert loose.summary()["regions"]["calf-left"]["contact_seconds"] > 1.5
    tight = Bench(cfg(**CAPPED))
    play_trace(tight, trace)
    assert tight.trips() == ["overspeed"]
    # After the replay cut power, the recorded pulses no longer turn its motor.
    assert tight.supervisor.rate_ppm == 0.0


def test_replay_command_prints_like_simulate_and_compares(tmp_path, capsys):
    path = hand_written(tmp_path / "gun.jsonl", 0.0235)
    assert replay(path, config=None, as_json=True) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0] == {"t": 0.1, "event": "region", "region": "calf-left"}
    assert lines[-1]["event"] == "summary" and lines[-1]["t"] == 2.5
    assert "note: recorded trips: none; replayed: none" in err
    capsys.readouterr()
    config = tmp_path / "capped.yaml"
    config.write_text("regions: {calf-left: {max_ppm: 2400}}\n")
    assert replay(path, config=str(config), as_json=False) == 0
    out, err = capsys.readouterr()
    assert "TRIP overspeed" in out
    assert "note: recorded trips: none; replayed: overspeed" in err


def test_replay_notes_where_the_trace_has_nothing_more_to_say(tmp_path, cfg):
    # The recording's supervisor cut power at 1.0 s (its motor stopped); a looser
    # replay keeps power on, but the trace has no pulses for it.
    path = hand_written(tmp_path / "gun.jsonl", 0.0235)
    kept = [
        line
        for line in path.read_text().splitlines()
        if '"tach"' not in line or json.loads(line)["t"] < 1.0
    ]
    kept.insert(-1, json.dumps({"k": "power", "t": 1.0, "on": False}))
    kept.insert(-1, json.dumps({"k": "trip", "t": 1.0, "reason": "overspeed"}))
    path.write_text("\n".join(kept) + "\n")
    trace = read_trace(path)
    bench = Bench(cfg(regions={"calf-left": {}}))
    play_trace(bench, trace)
    assert bench.power_on
    found = notes(trace, bench)
    assert "from 1.000 s the recorded motor had no power but the replay's had" in found[0]
    assert found[-1] == "recorded trips: overspeed; replayed: none"


def test_replay_notes_a_different_calibration(tmp_path, cfg):
    trace = read_trace(hand_written(tmp_path / "gun.jsonl", 0.03))
    bench = Bench(cfg(hardware={"tachometer": {"pulses_per_percussion": 2}}))
    play_trace(bench, trace)
    assert any("every rate reads 0.5x the recorded one" in n for n in notes(trace, bench))


BAD_TRACES = [
    ('{"k": "tach", "t": 1}\n', 1, "k = 'tach': the first line must be the header"),
    (None, 2, "k = 'tock': not a line kind of gunguard-trace/1"),
    ('{"k": "tach", "t": 1.0, "active": true, "level": 1}', 2, "level = 1: unknown key"),
    ('{"k": "tach", "t": 1.0}', 2, "active = {'t': 1.0}: missing"),
    ('{"k": "tach", "t": 1.0, "active": 1}', 2, "active = 1: must be true or false"),
    ('{"k": "force", "t": 1.0, "raw": 1.5}', 2, "raw = 1.5: a raw ADC reading is 0..1"),
    ('{"k": "force", "t": -1.0, "raw": 0.5}', 2, "t = -1.0: must be >= 0"),
    ('{"k": "select", "t": 1.0, "region": null}', 2, "region = None: must be a string"),
    ("[1, 2]", 2, "(top level) = [1, 2]: not a JSON object"),
    ('{"k": "tach", "t": 1.0, "active": tru}', 2, "not a JSON object: Expecting value"),
]


@pytest.mark.parametrize(("line", "number", "message"), BAD_TRACES)
def test_bad_traces_are_refused_with_line_and_key(tmp_path, line, number, message):
    path = tmp_path / "bad.jsonl"
    good = write_trace(tmp_path / "good.jsonl").read_text()
    if number == 1:
        path.write_text(line)
    else:
        path.write_text(good + (line if line is not None else '{"k": "tock", "t": 1}') + "\n")
    with pytest.raises(ConfigError) as raised:
        read_trace(path)
    text = str(raised.value)
    assert text.startswith(f"{path}:{number}: ") and message in text, text


def test_bad_header(tmp_path):
    path = write_trace(tmp_path / "t.jsonl", header={"format": "gunguard-trace/9"})
    with pytest.raises(ConfigError, match=r"t\.jsonl:1: format = 'gunguard-trace/9': not gunguard"):
        read_trace(path)
    path = write_trace(tmp_path / "t.jsonl", header={"calibration": {"zero": 0.05}})
    with pytest.raises(ConfigError, match=r":1: calibration\.newtons_per_unit = .*: missing"):
        read_trace(path)


def test_a_trace_cut_short_replays_to_its_last_line(tmp_path):
    path = write_trace(
        tmp_path / "t.jsonl", {"k": "select", "t": 0.5, "region": "calf-left"}, header={}
    )
    path.write_text(path.read_text() + '{"k": "tach", "t": 0.7, "ac')  # killed mid-line
    trace = read_trace(path)
    assert trace.end is None and trace.duration == 0.5


def test_replay_refuses_a_bad_trace_with_exit_2(tmp_path, capsys):
    path = tmp_path / "t.jsonl"
    path.write_text('{"k": "header"}\n')
    assert replay(path, config="default", as_json=True) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}:1: format = {{}}: missing" in err


def test_a_full_queue_drops_samples_and_marks_the_gap(tmp_path, cfg):
    config = cfg(**CAPPED)
    scenario = {
        "duration": 1.0,
        "steps": [{"at": 0.1, "gun": {"force_samples_n": [10, 11], "sample_ms": 1}}],
    }
    _, path = record(tmp_path, config, scenario, capacity=50)
    trace = read_trace(path)
    (start, until, dropped), *_ = trace.gaps
    assert dropped > 0 and 0.0 <= start <= until <= 1.0
    assert json.loads(path.read_text().splitlines()[-1])["dropped"] >= dropped
    bench = Bench(config)
    play_trace(bench, trace)
    assert any("samples were dropped" in n for n in notes(trace, bench))


def test_the_tap_passes_everything_through_unchanged(tmp_path, cfg):
    config = cfg(**CAPPED)
    clock = VirtualClock()
    recorder = TraceRecorder(tmp_path / "t.jsonl", config, clock, config="x")
    seen = []
    on_edge = recorder.edges(lambda t, active: seen.append((t, active)))
    on_edge(1.5, True)

    class Sensor:
        def read_raw(self) -> float:
            return 0.25

        def newtons(self, raw: float) -> float:
            return raw * 2

    force = recorder.force(Sensor())
    assert (force.read_raw(), force.newtons(0.25)) == (0.25, 0.5)
    assert seen == [(1.5, True)]
    recorder.close()
    recorder.close()  # idempotent
    kinds = [json.loads(line)["k"] for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert kinds == ["header", "tach", "force", "end"]


def test_simulate_needs_a_scenario_or_a_replay(capsys):
    from gunguard.cli import main

    assert main(["simulate"]) == 2
    assert "give a SCENARIO or --replay FILE" in capsys.readouterr().err
    assert main(["simulate", "x.yaml", "--replay", "y.jsonl"]) == 2
