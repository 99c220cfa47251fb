"""``gunguard simulate``: a scenario in virtual time, the same supervisor as ``run``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from controller import configfile, eventfmt
from controller.bench import Bench
from controller.configfile import ConfigError
from controller.scenario import failed_expectations, load_scenario, play

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
    logging.getLogger("controller").setLevel(logging.CRITICAL)
    bench = Bench(cfg, seed=scenario.seed, **kwargs)
    fmt = eventfmt.json_line if as_json else eventfmt.human
    bench.bus.subscribe(lambda e: print(fmt(e)))
    try:
        play(bench, scenario)
    except ValueError as exc:
        print(f"gunguard simulate: {scenario_path}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        bench.close()
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
