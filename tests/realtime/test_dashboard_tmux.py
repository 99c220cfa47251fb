"""``gunguard watch`` in a real terminal: tmux runs it, sends keys and captures the pane.

A daemon on mock pins holds the simulated gun at 2600 ppm / 30 N: arming calf-right
(cap 3200) runs, arming calf-left (cap 2400) trips overspeed. The dashboard must
follow every change, reset on ``r``, exit cleanly on Ctrl-C with the terminal
restored, and exit with a message when the daemon goes away. Every check polls the
captured screen against a deadline. The last tests render screens without a terminal.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from bench.processes import gunguard_command
from gunguard.operator.client import Connection
from gunguard.operator.dashboard import View, render
from gunguard.operator.protocol import SelectRegionResponse, build_status

DEADLINE_S = 30.0

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    """A private tmux server (never the user's) with one session per dashboard."""

    def __init__(self, socket_dir: Path) -> None:
        # One server per test, its socket in the test's own directory: a name reused
        # right after kill-server races the old server's exit, and tmux leaves its
        # socket files behind in /tmp/tmux-UID otherwise.
        self.server = f"gunguard-test-{uuid.uuid4().hex[:8]}"
        self.env = dict(os.environ, TERM="xterm-256color", TMUX_TMPDIR=str(socket_dir))

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.server, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
            env=self.env,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start(self, session: str, command: str, size: tuple[int, int] = (110, 45)) -> None:
        columns, lines = (str(n) for n in size)
        self.tmux(
            *("new-session", "-d", "-s", session, "-x", columns, "-y", lines, command),
            *(";", "set-option", "-t", session, "remain-on-exit", "on"),
        )

    def screen(self, session: str) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", session)

    def wait(self, session: str, *texts: str) -> str:
        end = time.monotonic() + DEADLINE_S
        shown = ""
        while time.monotonic() < end:
            shown = self.screen(session)
            if all(text in shown for text in texts):
                return shown
            time.sleep(0.05)
        missing = [t for t in texts if t not in shown]
        raise AssertionError(f"{missing} never appeared; the screen was:\n{shown}")

    def wait_re(self, session: str, pattern: str) -> re.Match[str]:
        end = time.monotonic() + DEADLINE_S
        shown = ""
        while time.monotonic() < end:
            shown = self.screen(session)
            match = re.search(pattern, shown)
            if match:
                return match
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never matched; the screen was:\n{shown}")

    def keys(self, session: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", session, *keys)

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.server, "kill-server"],
            capture_output=True,
            timeout=DEADLINE_S,
            env=self.env,
        )


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    base = Path(tempfile.mkdtemp(prefix="gg-term-", dir="/tmp"))
    terminal = Tmux(base)
    yield terminal
    terminal.kill()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def daemon() -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    base = Path(tempfile.mkdtemp(prefix="gg-tmux-", dir="/tmp"))
    config = base / "cfg.yaml"
    config.write_text(
        "hardware: {pin_factory: mock}\n"
        "loop: {rate_hz: 500, max_loop_gap_ms: 100}\n"  # light on a loaded machine
        "regions: {calf-left: {max_ppm: 2400}, calf-right: {}, neck: {allowed: false}}\n"
        f"storage: {{path: {base / 'history.db'}}}\n"
    )
    scenario = base / "hold.yaml"
    scenario.write_text("duration: 600\nsteps:\n  - {at: 0.0, gun: {ppm: 2600, force_n: 30}}\n")
    sock = base / "c.sock"
    proc = subprocess.Popen(
        [
            *gunguard_command(),
            *("run", "--config", str(config)),
            *("--sim-gun", str(scenario), "--control-socket", str(sock)),
        ],
        cwd=base,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield sock, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=DEADLINE_S)
        shutil.rmtree(base, ignore_errors=True)


def watch_command(sock: Path) -> str:
    """The dashboard, then its exit status and the terminal's line mode, kept on screen.

    The shell traps SIGINT (a handler, not "ignore", which the dashboard would inherit),
    so Ctrl-C ends the dashboard only.
    """
    watch = shlex.join([*gunguard_command(), "watch", "--socket", str(sock), "--wait", "30"])
    return (
        f'sh -c \'trap : INT; {watch}; echo "EXIT $?"; '
        'stty -a | grep -o -- "-*icanon" | sed "s/^/MODE /"; sleep 600\''
    )


def select(sock: Path, region: str, refused: str | None = None) -> None:
    """Select ``region``; ``refused``: the refusal expected instead."""
    with Connection.open(sock, timeout=DEADLINE_S) as conn:
        answer = conn.request("select_region", region=region)
    if refused is None:
        assert isinstance(answer, SelectRegionResponse), answer
    else:
        assert answer.error.reason == refused, answer  # type: ignore[union-attr]


def wait_standstill(sock: Path) -> None:
    end = time.monotonic() + DEADLINE_S
    with Connection.open(sock, timeout=DEADLINE_S) as conn:
        while conn.request("status").status.rate_ppm > 0.0:  # type: ignore[union-attr]
            assert time.monotonic() < end, "the motor never stopped"
            time.sleep(0.05)


@pytest.mark.realtime
@needs_tmux
def test_dashboard_follows_arm_trip_reset_and_exits_on_ctrl_c(tmux, daemon):
    """At 80 x 24, the smallest terminal it is laid out for: the time left stays on screen."""
    sock, _ = daemon
    tmux.start("w", watch_command(sock), size=(80, 24))
    screen = tmux.wait("w", " IDLE ", "no region", "motor power off", "q quit")
    assert re.search(r"calf-left .* 0\.0 %\s+5:00", screen)
    assert "not allowed: neck" in screen

    select(sock, "calf-right")
    tmux.wait("w", " ARMED ", "> calf-right", "motor power ON")
    # It redraws as the motor spins up: the rate, then the band the dose counts in.
    tmux.wait_re("w", r"Rate .* 2[5-7]\d\d / 3200 ppm cap")
    tmux.wait_re("w", r"> calf-right .* [0-9.]+ %\s+1:\d\d at <= 3200 ppm")

    # At 2600 ppm calf-left (cap 2400) is refused; armed from standstill it trips on the
    # spin-up.
    select(sock, "calf-left", refused="over_limit")
    tmux.wait("w", " IDLE ", "motor power off")
    wait_standstill(sock)
    select(sock, "calf-left")
    screen = tmux.wait("w", " TRIPPED ", "overspeed: m", "Motor power is off")
    assert "calf-left cap 2400 ppm" in screen
    banner = " ".join(screen.replace("│", " ").split())  # the panel wraps at 80 columns
    assert "Turn the speed down, then reset and select the region again." in banner
    assert re.search(r"calf-right .* [0-9.]+ %\s+\d:\d\d\s*$", screen, re.MULTILINE)
    assert "q quit" in screen

    tmux.keys("w", "r")
    screen = tmux.wait("w", " IDLE ", "reset: cleared overspeed")
    assert " TRIPPED " not in screen

    tmux.keys("w", "C-c")
    screen = tmux.wait("w", "gunguard watch: stopped (Ctrl-C)", "EXIT 0", "MODE ")
    assert "MODE icanon" in screen, "the terminal must be back in line mode"


@pytest.mark.realtime
@needs_tmux
def test_dashboard_says_so_and_exits_when_the_daemon_goes_away(tmux, daemon):
    sock, proc = daemon
    tmux.start("w", watch_command(sock))
    tmux.wait("w", " IDLE ", "q quit")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(DEADLINE_S) == 0
    screen = tmux.wait("w", "EXIT 4")
    assert f"gunguard watch: the daemon at {sock} went away" in screen.replace("\n", "")
    assert "MODE icanon" in tmux.wait("w", "MODE ")


@pytest.mark.realtime
@needs_tmux
def test_q_quits(tmux, daemon):
    sock, _ = daemon
    tmux.start("w", watch_command(sock))
    tmux.wait("w", " IDLE ")
    tmux.keys("w", "q")
    tmux.wait("w", "gunguard watch: quit", "EXIT 0", "MODE icanon")


def screen_text(view: View, now: float) -> str:
    console = Console(width=110, record=True, file=io.StringIO(), color_system=None)
    console.print(render(view, now))
    return console.export_text()


def test_render_shows_staleness_near_cap_and_the_trip(gunguard_bench):
    bench = gunguard_bench("achilles-tendinopathy")
    bench.select("calf-left")
    bench.gun(ppm=2320, force_n=30)  # 97 % of the 2400 cap
    bench.run(2.0)
    view = View(socket=Path("/run/x.sock"), status=build_status(bench.supervisor), received_at=10.0)
    fresh = screen_text(view, 10.5)
    assert "near the cap!" in fresh and "NO UPDATE" not in fresh
    assert "ARMED" in fresh and "> calf-left" in fresh
    stale = screen_text(view, 14.0)
    assert "NO UPDATE FOR 4.0 s: the daemon may be stuck; this is old data" in stale
    bench.supervisor.trip("overforce", "120.0 N > calf-left max 90 N for 100 ms")
    view.status = build_status(bench.supervisor)
    tripped = screen_text(view, 10.1)
    assert "TRIPPED" in tripped and "overforce: 120.0 N > calf-left max 90 N for 100 ms" in tripped
    assert screen_text(View(socket=Path("/x.sock")), 0.0).startswith(" gunguard  CONNECTING ")


def test_render_folds_untouched_regions_into_one_line_on_a_short_terminal(gunguard_bench):
    bench = gunguard_bench()  # 16 treatable regions
    bench.select("calf-left")
    bench.gun(ppm=2200, force_n=30)
    bench.run(1.0)
    view = View(socket=Path("/x.sock"), status=build_status(bench.supervisor), received_at=1.0)
    tall = screen_text_at(view, 1.0, 21)  # exactly enough: 5 fixed lines and 16 regions
    assert "   calf-right " in tall and "full dose left" not in tall
    assert len(tall.rstrip("\n").splitlines()) == 21
    short = screen_text_at(view, 1.0, 20)
    assert "> calf-left" in short and "   calf-right " not in short
    assert "full dose left: calf-right, quadriceps-left," in short
    assert len(short.rstrip("\n").splitlines()) <= 20


def screen_text_at(view: View, now: float, height: int | None) -> str:
    console = Console(width=110, record=True, file=io.StringIO(), color_system=None)
    console.print(render(view, now, height))
    return console.export_text()


def test_at_80_by_24_every_line_fits_and_the_armed_region_keeps_its_time_left(gunguard_bench):
    bench = gunguard_bench()  # 16 treatable regions, four never allowed
    bench.select("calf-left")
    bench.gun(ppm=2600, force_n=30)
    bench.run(3.0)
    bench.supervisor.trip("overforce", "120.0 N > calf-left max 90 N for 100 ms")
    view = View(socket=Path("/run/gunguard/control.sock"), received_at=3.0)
    view.status = build_status(bench.supervisor)
    for i in range(6):
        view.add_event({"event": "region", "region": f"calf-{i}"})
    console = Console(width=80, height=24, record=True, file=io.StringIO(), color_system=None)
    console.print(render(view, 3.0, 24, 80))
    lines = console.export_text().rstrip("\n").splitlines()
    assert len(lines) <= 24
    assert all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    assert "overforce: 120.0 N" in text and "You pressed harder than this region allows." in text
    assert re.search(r"> calf-left .* [0-9.]+ %\s+\d:\d\d", text)
    assert lines[-1].startswith("q quit")
