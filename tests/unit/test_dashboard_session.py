"""The dashboard's guided-session block: step, minutes against the target, the rate band
against the rate now, the cue or what to do, the 4-6/10 aim; the bell at a target."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from gunguard.operator import dashboard
from gunguard.operator.protocol import SessionStatus, Status

SESSION = {
    "plan": "achilles-calf-4-weeks",
    "patient": "example-patient-A",
    "session": 3,
    "phase": 1,
    "phase_name": "calves-settle",
    "step": 2,
    "steps": 4,
    "region": "calf-left",
    "state": "active",
    "target_s": 90.0,
    "done_s": 42.0,
    "rate_min_ppm": 1800.0,
    "rate_max_ppm": 2200.0,
    "cue": "Work the calf muscle",
    "detail": None,
    "intensity": [4, 6],
}


def screen(rate: float = 2000.0, **session: object) -> list[str]:
    status = Status(
        t=0.0,
        state="armed",
        region="calf-left",
        power_on=True,
        rate_ppm=rate,
        force_n=30.0,
        cap_ppm=2400.0,
        max_force_n=90.0,
        trip=None,
        hardware_max_ppm=3200.0,
        limit_force_n=90.0,
        regions={},
        session=SessionStatus.model_validate({**SESSION, **session}),
    )
    view = dashboard.View(socket=Path("/run/gunguard/control.sock"), status=status)
    console = Console(width=100, color_system=None, force_terminal=False)
    with console.capture() as captured:
        console.print(dashboard.render(view, 0.0, 30, 100))
    return [line.rstrip() for line in captured.get().splitlines()]


def test_the_session_block_shows_the_step_its_progress_band_cue_and_aim():
    lines = screen()
    assert lines[3] == (
        " Session  ARMED   achilles-calf-4-weeks  phase 1 calves-settle  step 2/4  calf-left"
    )
    assert lines[4].startswith("Step   ") and lines[4].endswith(" 0:42 / 1:30")
    assert lines[5].endswith("1800-2200 ppm (now 2000: in the band)")
    assert lines[6] == "Work the calf muscle"
    assert lines[7] == "Aim: comfortably uncomfortable, 4-6 out of 10"
    assert lines[-1] == "q quit  r reset  s stop (disarm)  n next step  x end session"


def test_out_of_band_target_refused_and_paused_say_what_to_do():
    assert screen(rate=2300.0)[5].endswith("(now 2300: above the band: slow down)")
    assert screen(rate=1500.0)[5].endswith("(now 1500: below the band: speed up)")
    target = screen(state="target", done_s=91.0)
    assert "TARGET REACHED" in target[3]
    assert target[6] == "Target reached: press n (or long-press the button) to move on"
    refused = screen(state="refused", detail="rest_interval: calf-left was last treated ...")
    assert "REFUSED" in refused[3]
    assert refused[6].startswith("rest_interval: calf-left was last treated ...")
    assert "n skips this step" in refused[6]


def test_no_session_no_block_and_the_bell_rings_at_a_target():
    plain = Status.model_validate(_status_without_session())
    view = dashboard.View(socket=Path("/s"), status=plain)
    console = Console(width=100, color_system=None, force_terminal=False)
    with console.capture() as captured:
        console.print(dashboard.render(view, 0.0, 30, 100))
    text = captured.get()
    assert "Session" not in text and "n next step" not in text
    assert dashboard._rings({"event": "session", "action": "target"})
    assert dashboard._rings({"event": "session", "action": "refused"})
    assert not dashboard._rings({"event": "session", "action": "armed"})


def _status_without_session() -> dict:
    return {
        "t": 0.0,
        "state": "idle",
        "region": None,
        "power_on": False,
        "rate_ppm": 0.0,
        "force_n": 0.0,
        "cap_ppm": None,
        "max_force_n": None,
        "trip": None,
        "hardware_max_ppm": 3200.0,
        "limit_force_n": 90.0,
        "regions": {},
    }
