"""``gunguard simulate``: a scenario in virtual time, the same supervisor as ``run``."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gunguard.config import loader as configfile
from gunguard.config.loader import ConfigError, config_hash
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core.clock import VirtualClock
from gunguard.operator import eventfmt
from gunguard.sim.bench import Bench
from gunguard.sim.scenario import check_scenario, failed_expectations, load_scenario, play
from gunguard.store.ledger import Ledger

EXIT_OK, EXIT_EXPECTATION, EXIT_INVALID = 0, 1, configfile.EXIT_CONFIG


def simulate(
    scenario_path: Path, *, config: str | None, as_json: bool, db: str | None = None
) -> int:
    """Run the scenario; 0 when every expectation holds, 1 when one fails, 2 when invalid."""
    try:
        scenario = load_scenario(scenario_path)
        if config is not None:
            cfg = configfile.load(config)
        elif scenario.config is not None:
            cfg = configfile.load(scenario.config, relative_to=scenario_path.resolve().parent)
        else:
            cfg = configfile.load("default")
        check_scenario(scenario, cfg)
    except ConfigError as exc:
        print(
            f"gunguard simulate: invalid input ({len(exc.problems)} problem(s)):", file=sys.stderr
        )
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID

    kwargs = {}
    if scenario.start_wall_clock is not None:
        kwargs["start_wall"] = scenario.start_wall_clock.timestamp()
    # The events are this command's output; the log would only repeat them.
    quiet = logging.getLogger("gunguard")
    previous_level = quiet.level
    quiet.setLevel(logging.CRITICAL + 1)
    with tempfile.TemporaryDirectory(prefix="gunguard-simulate-") as tmp:
        path = Path(db) if db is not None else Path(tmp) / "history.db"
        bench = Bench(cfg, seed=scenario.seed, book_factory=ledger_factory(cfg, path), **kwargs)
        fmt = eventfmt.json_line if as_json else eventfmt.human
        bench.bus.subscribe(lambda e: print(fmt(e)))
        try:
            play(bench, scenario)
        except ValueError as exc:
            print(f"gunguard simulate: {scenario_path}: {exc}", file=sys.stderr)
            return EXIT_INVALID
        finally:
            bench.close()
            close_book(bench)
            quiet.setLevel(previous_level)
    summary = bench.summary()
    if as_json:
        print(json.dumps({"t": round(bench.now, 6), "event": "summary", **summary}))
    else:
        print("\n".join(eventfmt.summary_lines(summary)))
    failed = failed_expectations(scenario, bench.events)
    for expectation in scenario.expect:
        mark = "FAILED" if expectation in failed else "ok"
        print(f"expect {expectation.describe()}: {mark}", file=sys.stderr)
    return EXIT_EXPECTATION if failed else EXIT_OK


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
