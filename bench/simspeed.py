"""Simulate speed: simulated seconds per wall second on a ten-minute scenario.

Two ways: the command as a user runs it (``gunguard simulate FILE --json``, interpreter
start-up and imports included) and the scenario player alone, in this process
(:func:`gunguard.sim.scenario.play` on a :class:`gunguard.sim.bench.Bench`).
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, SCENARIOS, Section, Table, Target

SCENARIO = SCENARIOS / "ten-minute-session.yaml"
SPEED_TARGET = Target(">=", 200.0)  # x real time


def _gunguard() -> str:
    exe = Path(sys.executable).with_name("gunguard")
    return str(exe) if exe.exists() else "gunguard"


def time_simulate(scenario: Path, *more: str, timeout: float = 600.0) -> float:
    """Wall seconds of ``gunguard simulate SCENARIO --json [more]`` as a user runs it."""
    started = time.perf_counter()
    out = subprocess.run(
        [_gunguard(), "simulate", str(scenario), "--json", *more],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"gunguard simulate exited {out.returncode}: {out.stderr[-1000:]}")
    return wall


def in_process_once(with_ledger: bool, scenario_file: Path = SCENARIO) -> tuple[float, int]:
    """The scenario player alone; with the ledger as ``gunguard simulate`` records, or not.
    Returns the wall seconds and the tach pin changes."""
    from gunguard.config import loader as configfile
    from gunguard.sim.bench import Bench
    from gunguard.sim.scenario import load_scenario, play

    scenario = load_scenario(scenario_file)
    assert scenario.config is not None
    cfg = configfile.load(scenario.config, relative_to=scenario_file.parent)
    logging.getLogger("gunguard").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="gunguard-bench-") as tmp:
        kwargs: dict[str, Any] = {}
        if with_ledger:
            from gunguard.sim.simulate import ledger_factory

            kwargs["book_factory"] = ledger_factory(cfg, Path(tmp) / "history.db")
        bench = Bench(cfg, seed=scenario.seed, **kwargs)
        edges = 0

        def count(t: float, active: bool) -> None:
            nonlocal edges
            edges += 1
            bench.supervisor.on_tach_edge(t, active)

        bench.rig.tachometer.connect(count)
        started = time.perf_counter()
        try:
            play(bench, scenario)
        finally:
            wall = time.perf_counter() - started
            bench.close()
            close = getattr(bench.book, "close", None)
            if close is not None:
                close()
    if bench.trips():
        raise RuntimeError(f"{scenario_file.name} tripped: {bench.trips()}")
    return wall, edges


def simulate_speed(repeats: int) -> Section:
    section = Section("simulate_speed", "Simulate speed (virtual time)")
    started = time.perf_counter()
    from gunguard.sim.scenario import load_scenario

    duration = load_scenario(SCENARIO).duration
    cli = [time_simulate(SCENARIO) for _ in range(repeats)]
    inproc = [in_process_once(False) for _ in range(repeats)]
    in_ledger = [in_process_once(True)[0] for _ in range(repeats)]
    cli_median = statistics.median(cli)
    in_median = statistics.median(w for w, _ in inproc)
    edges = inproc[0][1]
    ticks = round(duration * 1000)
    section.metric(
        "simulate_x_realtime",
        "gunguard simulate, 10-minute scenario, end to end",
        duration / cli_median,
        "x real time",
        SPEED_TARGET,
        note=f"median of {repeats}: {cli_median:.2f} s wall for {duration:g} s simulated",
    )
    section.metric(
        "simulate_x_realtime_player",
        "scenario player alone, in-memory book (no start-up, no ledger)",
        duration / in_median,
        "x real time",
        note=f"{ticks / in_median:,.0f} loop ticks per wall second in virtual time",
    )
    section.tables.append(
        Table(
            "Simulate: 600 s of percussion (1000 Hz loop, 2200-2800 ppm)",
            ["", "wall s (median)", "x real time", "µs per loop tick (incl. edges)"],
            [
                [
                    "gunguard simulate --json (process)",
                    round(cli_median, 3),
                    round(duration / cli_median, 1),
                    "",
                ],
                [
                    "scenario player in-process, in-memory book",
                    round(in_median, 3),
                    round(duration / in_median, 1),
                    round(in_median / ticks * 1e6, 2),
                ],
                [
                    "scenario player in-process, with the ledger (as simulate)",
                    round(statistics.median(in_ledger), 3),
                    round(duration / statistics.median(in_ledger), 1),
                    round(statistics.median(in_ledger) / ticks * 1e6, 2),
                ],
            ],
        )
    )
    section.data = {
        "scenario": str(SCENARIO.relative_to(ROOT)),
        "simulated_s": duration,
        "cli_wall_s": cli,
        "in_process_wall_s": [w for w, _ in inproc],
        "in_process_ledger_wall_s": in_ledger,
        "ticks": ticks,
        "tach_pin_changes": edges,
        "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE"),
    }
    section.notes += [
        f"Scenario {SCENARIO.relative_to(ROOT)}: {duration:g} s, three regions, the gun "
        f"percussing throughout ({edges} tach pin changes through gpiozero's callbacks, "
        f"{ticks} loop ticks).",
        "The process time includes interpreter start-up and imports (about 0.3-0.5 s "
        "here), which matter less the longer the scenario.",
        "`gunguard simulate` records into a temporary SQLite ledger, inline on "
        "virtual-time deadlines: Ledger.add on every tick and a commit every "
        "0.5 simulated seconds; the rows with and without it show what that costs.",
    ]
    section.seconds = time.perf_counter() - started
    return section
