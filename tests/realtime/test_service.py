"""The daemon process as systemd sees it: a real notify socket, real signals, mock pins.

Every wait polls a condition against a generous deadline; no assertion depends on
how fast this machine is.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bench.processes import (
    DEADLINE_S,
    NotifySocket,
    finish,
    gunguard_command,
    start,
    start_armed,
    write_config,
    write_scenario,
)


@pytest.fixture
def notify(tmp_path: Path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def armed_session(tmp_path: Path) -> Path:
    """A scenario that arms calf-left and keeps the simulated gun percussing in contact."""
    return write_scenario(
        tmp_path / "s.yaml",
        "{at: 0.2, region: calf-left}",
        "{at: 0.3, gun: {ppm: 2000, force_n: 20}}",
    )


def test_ready_then_pings_while_healthy_and_stopping_on_sigterm(tmp_path, notify):
    config = write_config(tmp_path / "cfg.yaml")
    proc, ready = start_armed(tmp_path, notify, config, armed_session(tmp_path))
    try:
        assert "STATUS=idle" in notify.messages[ready][1]
        first_ping = notify.wait_for("WATCHDOG=1", after=ready)
        notify.wait_for("WATCHDOG=1", after=first_ping + 1)
        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1", after=ready)
        assert proc.wait(DEADLINE_S) == 0
    finally:
        out, err = finish(proc)
    power = [line for line in out.splitlines() if '"event": "power"' in line]
    assert power[0].endswith('"on": true}')
    assert power[-1].endswith('"on": false}'), "power must be off after SIGTERM"
    assert "gunguard stopped: power off" in err


def test_pings_stop_while_the_loop_is_stalled(tmp_path, notify):
    config = write_config(tmp_path / "cfg.yaml")
    scenario = write_scenario(
        tmp_path / "s.yaml", "{at: 1.0, fault: {loop_stall_ms: 3000}}", duration=60
    )
    proc = start(tmp_path, notify, config, scenario, watchdog_usec=400_000)
    try:
        ready = notify.wait_for("READY=1")
        notify.wait_for("WATCHDOG=1", after=ready)
        # The stall begins at 1 s after start; find the longest silence between pings.
        trip = None
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end and trip is None:
            notify.pump()
            line = proc.stdout.readline() if proc.stdout else ""
            if '"loop_overrun"' in line:
                trip = line
        assert trip is not None, "the stall must trip loop_overrun"
        # The watchdog thread reports the trip early in the stall; the loop resumes
        # (and pings again) only when the stall is over.
        notify.pump()
        resumed = notify.wait_for("WATCHDOG=1", after=len(notify.messages))
        pings = [t for t, m in notify.messages[: resumed + 1] if m == "WATCHDOG=1"]
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        # Pings are due every 0.2 s; the 3 s stall leaves a silence of nearly all of
        # it, and systemd (WatchdogSec=0.4 s here) would have aborted the service.
        assert max(gaps) >= 2.5, gaps
    finally:
        proc.send_signal(signal.SIGTERM)
        finish(proc)


def test_sighup_with_a_bad_file_keeps_running_config_and_power_state(tmp_path, notify):
    config = write_config(tmp_path / "cfg.yaml")
    proc, ready = start_armed(tmp_path, notify, config, armed_session(tmp_path))
    try:
        config.write_text("limits: {bands: [{up_to_ppm: 2400, max_minutes: 9}]}\nbogus: 1\n")
        proc.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1", after=ready)
        back = notify.wait_for("READY=1", after=reloading)
        assert "STATUS=armed: calf-left" in notify.messages[back][1]
        assert proc.poll() is None, "a bad file must not stop the daemon"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE_S) == 0
    finally:
        out, err = finish(proc)
    assert "reload rejected, keeping the running config" in err
    assert "cfg.yaml:2: bogus = 1: unknown key" in err
    assert '"event": "trip"' not in out
    assert out.splitlines()[-1].startswith("summary") or '"on": false' in out


def test_sighup_tighter_applies_now_looser_waits_until_idle(tmp_path, monkeypatch):
    from gunguard.config import loader as configfile
    from gunguard.service import systemd

    monkeypatch.setattr(systemd, "APPLY_WAIT_S", 0.0)  # no loop runs here: the test ticks
    from gunguard.core.clock import RealClock  # noqa: F401 - daemon uses the real clock
    from gunguard.service.daemon import Daemon
    from gunguard.service.sdnotify import Notifier
    from gunguard.service.systemd import attach_systemd

    path = write_config(tmp_path / "cfg.yaml")
    daemon = Daemon(configfile.load(str(path)), simulated_gun=True)
    try:
        reloader = attach_systemd(daemon, str(path), Notifier(None))
        assert daemon.supervisor.select_region("calf-left") is None
        path.write_text(path.read_text().replace("max_ppm: 2400", "max_ppm: 2000"))
        assert reloader.reload_now() == "applied: tighter"
        daemon.supervisor.tick()  # a reload is applied at the start of the next tick
        assert daemon.supervisor.limits.regions["calf-left"].cap_ppm == 2000
        assert daemon.supervisor.power_on
        path.write_text(path.read_text().replace("max_ppm: 2000", "max_ppm: 2400"))
        assert reloader.reload_now() == "deferred: looser while armed"
        daemon.supervisor.tick()
        assert daemon.supervisor.limits.regions["calf-left"].cap_ppm == 2000
        daemon.supervisor.stop()
        daemon.supervisor.tick()
        assert daemon.supervisor.limits.regions["calf-left"].cap_ppm == 2400
        path.write_text(path.read_text().replace("pin_factory: mock", "pin_factory: lgpio"))
        assert reloader.reload_now() == "rejected: needs restart"
    finally:
        daemon.supervisor.close()
        daemon.rig.close()


def test_sigkill_then_the_stop_post_step_forces_power_off(tmp_path, notify):
    config = write_config(tmp_path / "cfg.yaml")
    proc, _ready = start_armed(tmp_path, notify, config, armed_session(tmp_path))
    try:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(DEADLINE_S) == -signal.SIGKILL
    finally:
        finish(proc)
    post = subprocess.run(
        [*gunguard_command(), "power-off", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        cwd=tmp_path,
    )
    assert post.returncode == 0, post.stderr
    assert "GPIO27" in post.stdout + post.stderr


def test_invalid_config_exits_2_for_restart_prevent(tmp_path, notify):
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions: {neck: {}}\n")
    proc = subprocess.run(
        [*gunguard_command(), "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env=dict(os.environ, NOTIFY_SOCKET=str(notify.path)),
    )
    assert proc.returncode == 2
    assert "regions.neck.allowed" in proc.stderr and "bad.yaml:1" in proc.stderr
    notify.pump()
    assert not any("READY=1" in m for _, m in notify.messages), "never READY on a bad config"


@pytest.mark.parametrize("faulthandler", ["", "1"])
def test_sigterm_exits_0_and_says_so_with_or_without_faulthandler(tmp_path, notify, faulthandler):
    """The unit sets PYTHONFAULTHANDLER=1, which makes faulthandler own SIGABRT."""
    config = write_config(tmp_path / "cfg.yaml")
    proc, _ready = start_armed(
        tmp_path, notify, config, armed_session(tmp_path), PYTHONFAULTHANDLER=faulthandler
    )
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE_S) == 0
    finally:
        _out, err = finish(proc)
    assert "gunguard stopped: power off" in err
    assert "Traceback" not in err


def test_a_watchdog_abort_dumps_every_threads_stack(tmp_path, notify):
    config = write_config(tmp_path / "cfg.yaml")
    proc, _ready = start_armed(
        tmp_path, notify, config, armed_session(tmp_path), PYTHONFAULTHANDLER="1"
    )
    try:
        proc.send_signal(signal.SIGABRT)
        assert proc.wait(DEADLINE_S) == -signal.SIGABRT
    finally:
        out, err = finish(proc)
    assert '"event": "power", "on": true' in out
    threads = [line for line in err.splitlines() if line.startswith("Thread 0x")]
    assert len(threads) >= 3  # the loop, the dispatcher, the logger, the sim gun, ...
    assert any("most recent call first" in line for line in threads)
    assert any(line.strip().startswith('File "') for line in err.splitlines())


def test_sim_firmware_runs_the_built_in_firmware_on_a_pty_not_serial_port(tmp_path):
    """``--sim-firmware``: the scenario's firmware steps act on the built-in simulated
    firmware; ``serial.port`` (a device that does not exist here) is never opened."""
    config = tmp_path / "cfg.yaml"
    config.write_text(
        "hardware: {pin_factory: mock}\n"
        "loop: {rate_hz: 250, max_loop_gap_ms: 100}\n"
        "regions: {calf-left: {max_ppm: 2400, attachment: medium-ball}}\n"
        "serial: {port: /dev/ttyGUN-NOT-HERE, required: true}\n"
    )
    scenario = write_scenario(
        tmp_path / "s.yaml",
        "{at: 0.1, firmware: {attachment: medium-ball}}",
        "{at: 0.4, region: calf-left}",
        "{at: 0.4, gun: {ppm: 2000, force_n: 20}}",
        "{at: 0.5, firmware: {motor: 'on'}}",
        duration=1.2,
    )
    proc = subprocess.run(
        [*gunguard_command(), "run", "--config", str(config), "--sim-gun", str(scenario),
         "--sim-firmware", "--json"],
        capture_output=True, text=True, timeout=DEADLINE_S, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert not [e for e in events if e["event"] in ("trip", "refused")], proc.stdout
    kinds = [(e["event"], e.get("state") or e.get("region") or e.get("on")) for e in events]
    assert ("link", "ok") in kinds and ("region", "calf-left") in kinds
    assert "ttyGUN-NOT-HERE" not in proc.stderr
    assert "gun firmware confirmed STOP(shutdown)" in proc.stderr
    # The built-in firmware drove the simulated motor: contact was counted.
    (contact,) = re.findall(r"calf-left +contact +([0-9.]+) s", proc.stdout)
    assert float(contact) > 0.0


def test_sim_gun_judges_the_scenarios_expectations_and_a_stall_trips(tmp_path):
    """``run --sim-gun`` exits 1 when its story did not happen (``make demo`` with it)."""
    config = write_config(tmp_path / "cfg.yaml")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "duration: 2.5\nsteps:\n"
        "  - {at: 0.2, region: calf-left}\n"
        "  - {at: 0.3, gun: {ppm: 2000, force_n: 20}}\n"
        "  - {at: 1.0, fault: {loop_stall_ms: 400}}\n"
        "expect:\n"
        "  - {trip: loop_overrun, between: [1.0, 2.5]}\n"
        "  - {trip: overforce}\n"
    )
    done = subprocess.run(
        [*gunguard_command(), "run", "--config", str(config), "--sim-gun", str(scenario)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S * 3,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "TRIP loop_overrun: " in done.stdout
    expectations = [line for line in done.stderr.splitlines() if line.startswith("expect ")]
    assert expectations == [
        "expect trip: loop_overrun between 1 and 2.5 s: ok",
        "expect trip: overforce: FAILED",
    ]
