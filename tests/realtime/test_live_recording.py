"""``gunguard run --record`` in real time, replayed by ``gunguard simulate --replay``.

The live daemon runs the simulated gun through a session with an edge-judged trip
(overspeed) and a tick-judged one (overforce); its trace replays through the same
config in virtual time. What must agree, and why only so far:

* the trip reasons, as a set: both runs judge the same edges and force readings;
* the counted contact time and dose, within a tick-sized tolerance. Contact time is
  counted tick by tick: the live loop ticks when the machine lets it (about every
  1 ms, sometimes a few ms late on a loaded machine), the replay on its exact 1 ms
  grid. Each counted stretch (from a selection to its trip or reset) may therefore
  begin and end up to one live tick apart in the two runs: 2 ends x 2 stretches, each
  allowed 5 ms (one tick plus lateness), so 20 ms in all. The dose is rounded to 4
  decimals in both outputs; its tolerance is 20 ms over the tightest allowance (the
  2-minute one above 2400 ppm) plus that rounding.

Nothing here asserts how fast anything happened.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from bench.processes import DEADLINE_S, gunguard_command
from gunguard.operator.history import history
from gunguard.sim.simulate import replay

pytestmark = pytest.mark.realtime

CONFIG = """\
hardware: {pin_factory: mock}
loop: {rate_hz: 1000, max_loop_gap_ms: 100}
regions: {calf-left: {max_ppm: 2400}}
"""

SESSION = """\
duration: 2.4
steps:
  - {at: 0.1, region: calf-left}
  - {at: 0.1, gun: {ppm: 2200, force_n: 30}}
  - {at: 0.6, gun: {ppm: 2700}}              # overspeed: judged on the edge
  - {at: 1.0, reset: true, gun: {ppm: 2200}}
  - {at: 1.1, region: calf-left}
  - {at: 1.7, gun: {force_n: 150}}           # overforce: judged at a tick
"""

STRETCHES = 2
PER_END_S = 0.005
CONTACT_TOLERANCE_S = 2 * STRETCHES * PER_END_S
TIGHTEST_ALLOWANCE_S = 120.0
DOSE_TOLERANCE = CONTACT_TOLERANCE_S / TIGHTEST_ALLOWANCE_S + 1e-4


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_live_recording_replays_to_the_same_trips_and_doses(tmp_path, capsys):
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    (tmp_path / "session.yaml").write_text(SESSION)
    trace, db = tmp_path / "trace.jsonl", tmp_path / "live.db"
    live = subprocess.run(
        [
            *gunguard_command(),
            "run",
            "--config",
            "cfg.yaml",
            "--sim-gun",
            "session.yaml",
            "--json",
            "--record",
            str(trace),
            "--db",
            str(db),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S * 2,
    )
    assert live.returncode == 0, live.stderr
    live_trips = {e["reason"] for e in json_lines(live.stdout) if e["event"] == "trip"}
    assert live_trips == {"overspeed", "overforce"}, live.stdout

    assert history(db, region=None, as_json=True) == 0
    stored = json.loads(capsys.readouterr().out)
    live_contact = sum(t["contact_seconds"] for t in stored["treatments"])
    (live_region,) = stored["regions"]

    assert replay(trace, config=None, as_json=True) == 0
    out, err = capsys.readouterr()
    *replayed, summary = json_lines(out)
    assert {e["reason"] for e in replayed if e["event"] == "trip"} == live_trips, err
    calf = summary["regions"]["calf-left"]
    assert calf["contact_seconds"] == pytest.approx(live_contact, abs=CONTACT_TOLERANCE_S)
    assert calf["dose"] == pytest.approx(live_region["dose"], abs=DOSE_TOLERANCE)
    assert live_contact > 0.5  # the comparison is about something
