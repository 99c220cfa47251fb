"""The client commands against a real daemon process on mock pins, in real time.

One daemon (``gunguard run --sim-gun``) serves the whole module: its simulated
person holds the gun at 2600 ppm and 30 N, so arming calf-right (cap 3200) runs
and arming calf-left (cap 2400) trips overspeed. Its socket comes from the
config's ``control_socket.path``. Waits poll the socket against deadlines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.processes import gunguard_command
from gunguard.operator.client import Connection
from gunguard.operator.protocol import Status, StatusResponse

DEADLINE_S = 30.0

pytestmark = pytest.mark.realtime


@dataclass
class Running:
    dir: Path
    config: Path
    scenario: Path
    socket: Path
    proc: subprocess.Popen[str]


def write_files(base: Path) -> tuple[Path, Path, Path]:
    sock = base / "c.sock"
    config = base / "cfg.yaml"
    config.write_text(
        "hardware: {pin_factory: mock}\n"
        "loop: {rate_hz: 500, max_loop_gap_ms: 100}\n"  # light on a loaded machine
        "regions: {calf-left: {max_ppm: 2400}, calf-right: {}, neck: {allowed: false}}\n"
        f"storage: {{path: {base / 'history.db'}}}\n"
        f"control_socket: {{path: {sock}}}\n"
    )
    scenario = base / "hold.yaml"
    scenario.write_text("duration: 600\nsteps:\n  - {at: 0.0, gun: {ppm: 2600, force_n: 30}}\n")
    return config, scenario, sock


def status(path: Path) -> Status:
    with Connection.open(path, timeout=DEADLINE_S) as conn:
        response = conn.request("status")
    assert isinstance(response, StatusResponse)
    return response.status


def wait_status(path: Path, what: str, condition) -> Status:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        current = status(path)
        if condition(current):
            return current
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last status: {current}")


@pytest.fixture(scope="module")
def daemon() -> Iterator[Running]:
    base = Path(tempfile.mkdtemp(prefix="gg-cli-", dir="/tmp"))  # AF_UNIX: short paths
    config, scenario, sock = write_files(base)
    proc = subprocess.Popen(
        [*gunguard_command(), "run", "--config", str(config), "--sim-gun", str(scenario)],
        cwd=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Running(base, config, scenario, sock, proc)
    try:
        end = time.monotonic() + DEADLINE_S
        while not sock.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < end, "the daemon never created its socket"
            time.sleep(0.05)
        yield running
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE_S) == 0
        assert not sock.exists(), "the socket must be removed on exit"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=DEADLINE_S)
        shutil.rmtree(base, ignore_errors=True)


def gunguard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*gunguard_command(), *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env=env,
    )


def test_status_as_text_and_as_json_found_by_socket_or_config(daemon):
    text = gunguard("status", "--socket", str(daemon.socket))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "gunguard: IDLE  motor power off"
    assert lines[1] == "  rate        0 ppm   (no region armed)"
    [calf] = [line for line in lines if line.startswith("  calf-left ")]
    assert calf.startswith("  calf-left            0.0 %  5:00 ")  # the dashboard's units
    assert calf.endswith("<= 2400 ppm 0:00 / 5:00, <= 3200 ppm 0:00 / 2:00")
    assert lines[-1] == "  not allowed: neck"
    as_json = gunguard("status", "--json", "--config", str(daemon.config))
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert (data["state"], data["region"], data["power_on"]) == ("idle", None, False)
    assert set(data["regions"]) == {"calf-left", "calf-right"}
    env = dict(os.environ, GUNGUARD_SOCKET=str(daemon.socket))
    assert json.loads(gunguard("status", "--json", env=env).stdout)["state"] == "idle"


def test_arm_trip_refuse_reset_and_stop(daemon):
    sock = ["--socket", str(daemon.socket)]
    armed = gunguard("region", "calf-right", *sock)
    assert armed.returncode == 0, armed.stderr
    assert armed.stdout.startswith("calf-right armed: the motor has power (rate ")
    running = wait_status(
        daemon.socket, "calf-right percussing", lambda s: s.power_on and s.rate_ppm > 2400
    )
    assert running.state == "armed" and running.region == "calf-right"

    # The gun at 2600 ppm is over calf-left's 2400 cap: the switch is refused, power off.
    over = gunguard("region", "calf-left", *sock)
    assert over.returncode == 1
    assert over.stderr.startswith("gunguard: refused calf-left: over_limit: the gun runs at ")
    assert over.stderr.endswith("over calf-left's cap 2400 ppm: slow it down, then select\n")
    wait_status(daemon.socket, "the motor stopped", lambda s: s.rate_ppm == 0.0)

    # Armed from standstill, the motor spins up through the cap: it trips overspeed. The
    # reply says what happened by the time it settles: armed, or tripped at once.
    at_once = gunguard("region", "calf-left", *sock)
    if at_once.returncode == 1:
        assert at_once.stdout.startswith(  # measured over percussions, or the 0.25 s mean
            "calf-left was selected, then tripped at once: overspeed: m"
        )
        assert at_once.stdout.rstrip().endswith(
            "Motor power is off. The gun ran faster than this region's cap. Turn the speed "
            "down, then reset and select the region again."
        )
    else:
        assert at_once.returncode == 0, at_once.stderr
        assert at_once.stdout.startswith("calf-left armed: the motor has power")
    tripped = wait_status(daemon.socket, "the overspeed trip", lambda s: s.state == "tripped")
    assert tripped.trip is not None and tripped.trip.reason == "overspeed"
    assert not tripped.power_on

    refused = gunguard("region", "calf-right", *sock)
    assert refused.returncode == 1
    assert refused.stderr == (
        "gunguard: refused calf-right: trip_latched: trip overspeed is latched: reset first\n"
    )
    shown = gunguard("status", *sock).stdout
    assert "  TRIP   overspeed: m" in shown  # measured (one period) or mean (0.25 s)
    assert "calf-left cap 2400 ppm (+tolerance: 2448)" in shown

    reset = gunguard("reset", *sock)
    assert reset.stdout == "cleared trip overspeed: power stays off until a region is selected\n"
    assert status(daemon.socket).state == "idle"
    assert gunguard("reset", *sock).stdout == "no trip latched: nothing to reset\n"

    never = gunguard("region", "neck", *sock)
    assert never.returncode == 1
    assert never.stderr == (
        "gunguard: refused neck: never_allowed: neck is never treated with a massage gun\n"
    )
    assert gunguard("region", "calf-right", *sock).returncode == 0, "armed again"
    stop = gunguard("stop", *sock)
    assert (stop.returncode, stop.stdout) == (0, "stopped: no region selected, motor power off\n")
    idle = status(daemon.socket)
    assert (idle.state, idle.region, idle.power_on) == ("idle", None, False)


def test_a_second_daemon_on_the_same_socket_refuses_to_start(daemon):
    second = subprocess.run(
        [
            *gunguard_command(),
            "run",
            "--config",
            str(daemon.config),
            "--sim-gun",
            str(daemon.scenario),
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        cwd=daemon.dir,
    )
    assert second.returncode == 3
    assert f"gunguard: another process is listening on {daemon.socket}" in second.stderr
    assert daemon.socket.exists() and status(daemon.socket).state == "idle"


def test_no_daemon_is_exit_4_with_the_reason(tmp_path):
    missing = gunguard("status", "--socket", str(tmp_path / "none.sock"))
    assert missing.returncode == 4
    assert missing.stderr.startswith(
        f"gunguard: no control socket at {tmp_path / 'none.sock'}: is gunguard running?"
    )
    short = Path(tempfile.mkdtemp(prefix="gg-", dir="/tmp"))
    try:
        stale = short / "stale.sock"
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(str(stale))
        dead.close()
        refused = gunguard("reset", "--socket", str(stale))
        assert refused.returncode == 4
        assert refused.stderr == (
            f"gunguard: nothing is listening on {stale}: gunguard is not running "
            "(a stale socket file)\n"
        )
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_an_invalid_config_is_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions: {neck: {}}\n")
    result = gunguard("stop", "--config", str(bad))
    assert result.returncode == 2
    assert "gunguard: invalid configuration:" in result.stderr
    assert "regions.neck.allowed" in result.stderr
