"""A guided session in real time: ``gunguard run --sim-gun --plan`` driven from a second
terminal (``gunguard session start|next``, ``gunguard pain``), then ``gunguard plan status``
on the store it wrote. Waits poll the socket against generous deadlines; nothing here
asserts a speed."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from bench.processes import gunguard_command
from gunguard.cli import main
from gunguard.operator.client import ClientError, Connection
from gunguard.operator.protocol import (
    ErrorResponse,
    PainResponse,
    Response,
    Status,
    StatusResponse,
)
from tests.waiting import wait_for

DEADLINE_S = 30.0

pytestmark = pytest.mark.realtime

PLAN = """\
patient: live-A
start_date: 2026-01-01
rest_hours: 48
phases:
  - name: short
    routine:
      - {region: calf-left, minutes: 0.02, rate_ppm: [1800, 2200], cue: left calf}
      - {region: calf-right, minutes: 0.02, rate_ppm: [1800, 2200], cue: right calf}
"""


def request(path: Path, cmd: str, **fields: object) -> Response:
    with Connection.open(path, timeout=DEADLINE_S) as conn:
        return conn.request(cmd, **fields)


def answers(path: Path) -> bool:
    """The daemon listens (the socket file appears a moment before it does)."""
    try:
        return isinstance(request(path, "status"), StatusResponse)
    except ClientError:
        return False


def status(path: Path) -> Status:
    response = request(path, "status")
    assert isinstance(response, StatusResponse)
    return response.status


def gunguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*gunguard_command(), *args], capture_output=True, text=True, timeout=DEADLINE_S
    )


def test_a_guided_session_from_a_second_terminal(capsys):
    base = Path(tempfile.mkdtemp(prefix="gg-plan-", dir="/tmp"))  # AF_UNIX: short paths
    sock, db = base / "c.sock", base / "history.db"
    config = base / "cfg.yaml"
    config.write_text(
        "hardware: {pin_factory: mock}\n"
        "loop: {rate_hz: 500, max_loop_gap_ms: 100}\n"  # light on a loaded machine
        "regions: {calf-left: {max_ppm: 2400}, calf-right: {max_ppm: 2400}}\n"
    )
    (base / "plan.yaml").write_text(PLAN)
    scenario = base / "hold.yaml"
    scenario.write_text("duration: 600\nsteps:\n  - {at: 0.0, gun: {ppm: 2000, force_n: 30}}\n")
    proc = subprocess.Popen(
        [
            *gunguard_command(),
            "run",
            "--config",
            str(config),
            "--sim-gun",
            str(scenario),
            "--plan",
            str(base / "plan.yaml"),
            "--control-socket",
            str(sock),
            "--db",
            str(db),
        ],
        cwd=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: answers(sock) or proc.poll() is not None, "the daemon's socket")
        assert proc.poll() is None, proc.communicate()
        where = ("--socket", str(sock))
        before = request(sock, "pain", value=2, when="before")  # (the socket, as a script would)
        assert isinstance(before, PainResponse) and before.session is None

        started = gunguard("session", "start", *where)
        assert started.returncode == 0, started.stderr
        assert started.stdout.splitlines()[0] == (
            "plan, phase 1 (short), step 1/2: calf-left 0:00 of 0:01 at 1800-2200 ppm: armed"
        )
        first = wait_for(
            lambda: (s := status(sock)).session is not None and s.session.state == "target" and s,
            "step 1's target",
        )
        assert first.region == "calf-left" and first.power_on  # waits for the confirm
        assert first.session.done_s >= 1.2

        moved = gunguard("session", "next", *where)
        assert moved.returncode == 0, moved.stderr
        assert "step 2/2: calf-right" in moved.stdout
        wait_for(
            lambda: (s := status(sock)).session is not None and s.session.state == "target",
            "step 2's target",
        )
        after = request(sock, "pain", value=3)  # a session runs: "after" by itself
        assert isinstance(after, PainResponse) and (after.when, after.session) == ("after", 1)
        done = gunguard("session", "next", *where)
        assert done.stdout == "session completed: the region is disarmed\n"
        wait_for(lambda: (s := status(sock)).region is None and not s.power_on, "the disarm")
        again = request(sock, "session", action="start")
        assert isinstance(again, ErrorResponse) and again.error.reason == "plan_rest"
        assert again.error.message.startswith("plan plan asks for 48 h between sessions")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=DEADLINE_S)
    try:
        assert proc.returncode == 0, err
        assert "session step 1 calf-left: target 0:01 reached: confirm to move on" in out
        capsys.readouterr()
        assert main(["plan", "status", "--db", str(db), "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["plan"]["name"] == "plan" and data["treated_sessions"] == 1
        assert data["running"] is None
        assert [d["what"] for d in data["due"]] == ["pain_morning", "session"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_pain_score_outside_0_to_10_is_refused_before_anything_is_sent(capsys):
    for bad in ("11", "-1", "3.5", "three"):
        with pytest.raises(SystemExit) as exited:
            main(["pain", bad, "--socket", "/nonexistent/c.sock"])
        assert exited.value.code == 2
        assert "pain is a whole number from 0 (none) to 10" in capsys.readouterr().err
