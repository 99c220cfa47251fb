"""``gunguard simulate``: a scenario, or a recorded trace (``--replay``), in virtual time,
through the same supervisor as ``run``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gunguard.config import loader as configfile
from gunguard.config.loader import ConfigError, LocatedProblem, config_hash
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core.clock import VirtualClock
from gunguard.core.exits import Exit
from gunguard.operator import eventfmt
from gunguard.plan.check import check_plan
from gunguard.plan.files import LoadedPlan, load_plan
from gunguard.plan.runner import SessionRefused
from gunguard.sim.bench import DEFAULT_START_WALL, Bench
from gunguard.sim.replay import notes, play_trace
from gunguard.sim.scenario import (
    check_scenario,
    failed_expectations,
    find_scenario,
    load_scenario,
    play,
)
from gunguard.sim.trace import read_trace
from gunguard.store.ledger import Ledger

EXIT_OK, EXIT_EXPECTATION, EXIT_INVALID = Exit.OK, Exit.NO, Exit.CONFIG


def simulate(
    scenario_path: Path, *, config: str | None, as_json: bool, db: str | None = None
) -> int:
    """Run the scenario; 0 when every expectation holds, 1 when one fails, 2 when invalid."""
    try:
        scenario_path = find_scenario(str(scenario_path))
        scenario = load_scenario(scenario_path)
        folder = scenario_path.resolve().parent
        if config is not None:
            cfg, config_name = configfile.load(config), config
        elif scenario.config is not None:
            cfg = configfile.load(scenario.config, relative_to=folder)
            config_name = scenario.config
        else:
            cfg, config_name = configfile.load("default"), "default"
        check_scenario(scenario, cfg)
        plan = None
        if scenario.plan is not None:
            plan = load_plan(scenario.plan, relative_to=folder)
            start = scenario.start_wall_clock or dt.datetime.fromtimestamp(
                DEFAULT_START_WALL, dt.UTC
            )
            problems, _ = check_plan(plan, cfg, config_name, start.date())
            if problems:
                raise ConfigError(problems)
    except ConfigError as exc:
        return _invalid(exc)

    start_wall = None
    if scenario.start_wall_clock is not None:
        start_wall = scenario.start_wall_clock.timestamp()
    bench = _run(
        cfg,
        lambda bench: play(bench, scenario),
        seed=scenario.seed,
        start_wall=start_wall,
        as_json=as_json,
        db=db,
        name=str(scenario_path),
        plan=plan,
        config_name=config_name,
    )
    if bench is None:
        return EXIT_INVALID
    failed = failed_expectations(scenario, bench.events)
    for expectation in scenario.expect:
        mark = "FAILED" if expectation in failed else "ok"
        print(f"expect {expectation.describe()}: {mark}", file=sys.stderr)
    return EXIT_EXPECTATION if failed else EXIT_OK


def replay(trace_path: Path, *, config: str | None, as_json: bool, db: str | None = None) -> int:
    """Replay a recorded trace (``run --record``) with the recorded config or ``config``;
    prints what ``simulate`` prints, then notes comparing it with the recording on
    standard error. 0 when it ran, 2 when the trace or config is invalid."""
    try:
        trace = read_trace(trace_path)
        recorded = trace.header.get("config")
        if config is None and recorded is None:
            raise ConfigError(
                [
                    LocatedProblem(
                        str(trace_path), 1, ("config",), None, "no config recorded: give --config"
                    )
                ]
            )
        cfg = configfile.load(config if config is not None else str(recorded))
    except ConfigError as exc:
        return _invalid(exc)
    start_wall = trace.header.get("start_wall_s")
    bench = _run(
        cfg,
        lambda bench: play_trace(bench, trace),
        seed=0,
        start_wall=float(start_wall) if start_wall is not None else None,
        as_json=as_json,
        db=db,
        name=str(trace_path),
    )
    if bench is None:
        return EXIT_INVALID
    recorded_hash = trace.header.get("config_hash")
    if recorded_hash is not None and recorded_hash != config_hash(cfg):
        print(
            f"note: replayed with config {config_hash(cfg)}, recorded with {recorded_hash}",
            file=sys.stderr,
        )
    for note in notes(trace, bench):
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK


def _invalid(exc: ConfigError) -> int:
    print(f"gunguard simulate: invalid input ({len(exc.problems)} problem(s)):", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    return EXIT_INVALID


def _run(
    cfg: GunguardConfig,
    play_on: Callable[[Bench], None],
    *,
    seed: int,
    start_wall: float | None,
    as_json: bool,
    db: str | None,
    name: str,
    plan: LoadedPlan | None = None,
    config_name: str = "the config",
) -> Bench | None:
    """Play on a bench, printing every event and then the summary (None: a step could
    not run, said on standard error)."""
    kwargs: dict[str, Any] = {} if start_wall is None else {"start_wall": start_wall}
    # The events are this command's output; the log would only repeat them.
    quiet = logging.getLogger("gunguard")
    previous_level = quiet.level
    quiet.setLevel(logging.CRITICAL + 1)
    with tempfile.TemporaryDirectory(prefix="gunguard-simulate-") as tmp:
        path = Path(db) if db is not None else Path(tmp) / "history.db"
        bench = Bench(
            cfg,
            seed=seed,
            book_factory=ledger_factory(cfg, path),
            config_name=config_name,
            **kwargs,
        )
        fmt = eventfmt.json_line if as_json else eventfmt.human
        bench.bus.subscribe(lambda e: print(fmt(e)))
        try:
            if plan is not None:
                bench.runner.adopt(plan)
            play_on(bench)
        except (ValueError, SessionRefused) as exc:
            print(f"gunguard simulate: {name}: {exc}", file=sys.stderr)
            return None
        finally:
            bench.close()
            close_book(bench)
            quiet.setLevel(previous_level)
    summary = bench.summary()
    if as_json:
        print(json.dumps({"t": round(bench.now, 6), "event": "summary", **summary}))
    else:
        print("\n".join(eventfmt.summary_lines(summary)))
    return bench


def ledger_factory(
    cfg: GunguardConfig, path: Path, **options: Any
) -> Callable[[VirtualClock], Ledger]:
    """A new ledger on the same file at every (re)boot of the bench, so restarts are real.

    No writer thread: the bench pumps it between ticks on virtual-time deadlines, so
    the output is deterministic. A write failure trips ``storage_fault`` as in the
    daemon (the assembly wires it). ``options`` go to :class:`Ledger` (tests:
    timeouts, telemetry bounds).
    """

    def make(clock: VirtualClock) -> Ledger:
        return Ledger(
            path,
            resolve_limits(cfg),
            clock,
            config_tag=config_hash(cfg),
            background=False,
            durable=False,
            **options,
        )

    return make


def close_book(bench: Bench) -> None:
    """Store what the last boot's ledger still holds (the bench does not own the book)."""
    close = getattr(bench.book, "close", None)
    if close is not None:
        close()
