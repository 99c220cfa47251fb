"""``gunguard calibrate --steps tach`` against a real daemon, through its control socket.

The daemon (``gunguard run --sim-gun``, mock pins) holds the motor; its simulated gun
runs at 1800 ppm in the air once a region is armed. calibrate only reads the measured
rate and disarms when done: the motor is powered by the supervisor alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.processes import finish, gunguard_command
from gunguard.config import loader as configfile
from gunguard.operator.client import Connection, Unreachable
from gunguard.operator.protocol import SelectRegionResponse, Status, StatusResponse
from gunguard.store.queries import open_reader
from tests.waiting import wait_for

pytestmark = pytest.mark.realtime


def request(sock: Path, cmd: str, **fields: object) -> object:
    with Connection.open(sock, timeout=10.0) as conn:
        return conn.request(cmd, **fields)


def status(sock: Path) -> Status | None:
    try:
        response = request(sock, "status")
    except Unreachable:
        return None
    assert isinstance(response, StatusResponse)
    return response.status


@pytest.fixture
def daemon() -> Iterator[tuple[Path, Path]]:
    base = Path(tempfile.mkdtemp(prefix="gg-cal-", dir="/tmp"))  # AF_UNIX: short paths
    sock = base / "c.sock"
    config = base / "gun.yaml"
    config.write_text(
        "hardware: {pin_factory: mock}\n"
        "loop: {rate_hz: 500, max_loop_gap_ms: 100}\n"  # light on a loaded machine
        "regions: {calf-right: {}}\n"
        f"control_socket: {{path: {sock}}}\n"
    )
    scenario = base / "run.yaml"
    scenario.write_text("duration: 600\nsteps:\n  - {at: 0.0, gun: {ppm: 1800, force_n: 0}}\n")
    proc = subprocess.Popen(
        [*gunguard_command(), "run", "--config", str(config), "--sim-gun", str(scenario)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: proc.poll() is not None or status(sock), "the daemon's socket")
        assert proc.poll() is None, finish(proc)
        yield base, sock
    finally:
        finish(proc)
        shutil.rmtree(base, ignore_errors=True)


def test_the_tach_step_measures_through_the_running_daemon_and_disarms(daemon):
    base, sock = daemon
    assert isinstance(request(sock, "select_region", region="calf-right"), SelectRegionResponse)
    wait_for(lambda: (s := status(sock)) is not None and s.rate_ppm > 1700, "the gun running")
    result = subprocess.run(
        [
            *gunguard_command(), "calibrate", "--config", str(base / "gun.yaml"),
            "--steps", "tach", "--reference-ppm", "1800", "--seconds", "1", "--yes",
            "--output", str(base / "cal.yaml"), "--db", str(base / "cal.db"),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(
        r"measured 1[78]\d\d ppm .*: [01]\.\d\d pulses per percussion -> 1", result.stdout
    )
    assert "disarmed" in result.stdout
    cal, _ = configfile.read_calibration(base / "cal.yaml")
    assert cal.pulses_per_percussion == 1 and len(cal.steps.pulses_per_percussion.readings) >= 8
    with open_reader(base / "cal.db") as store:
        assert [c.key for c in store.calibrations()] == [
            "hardware.tachometer.pulses_per_percussion"
        ]
    after = status(sock)
    assert after is not None and after.state == "idle" and not after.power_on
