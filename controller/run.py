"""``gunguard run``: load the config, build the daemon, run it; exit codes for systemd."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from controller import configfile, eventfmt
from controller.configfile import ConfigError
from controller.daemon import Daemon, play_live, print_events_live
from controller.rt import apply_realtime
from controller.scenario import load_scenario
from controller.service import attach_systemd

log = logging.getLogger(__name__)

EXIT_OK, EXIT_CONFIG, EXIT_HARDWARE = 0, configfile.EXIT_CONFIG, 3


def run(args: argparse.Namespace) -> int:
    try:
        cfg = configfile.load(args.config)
        scenario = load_scenario(Path(args.sim_gun)) if args.sim_gun else None
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("invalid configuration: %s", problem)
            print(f"gunguard: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        daemon = Daemon(cfg, simulated_gun=scenario is not None)
    except Exception as exc:
        log.critical("hardware initialisation failed: %s", exc)
        print(f"gunguard: hardware initialisation failed: {exc}", file=sys.stderr)
        return EXIT_HARDWARE
    # Absolute: lgpio changes the working directory to $LG_WD when it is imported.
    attach_systemd(daemon, str(configfile.resolve(args.config).resolve()))
    realtime = cfg.realtime
    daemon.add_ready_callback(
        lambda: log.info(
            "real-time: %s",
            ", ".join(apply_realtime(realtime.sched_fifo_priority, realtime.freeze_gc)) or "none",
        )
    )
    if scenario is not None:
        if not args.verbose:  # the printed events are the output; the log would repeat them
            logging.getLogger("controller.supervisor").setLevel(logging.CRITICAL)
        print_events_live(daemon.bus, as_json=args.json, since=daemon.clock.monotonic())
        trips: list[str] = []
        daemon.bus.subscribe(
            lambda e: trips.append(e.fields["reason"]) if e.kind == "trip" else None
        )
        daemon.add_thread(play_live(daemon, scenario))
    daemon.run()
    if scenario is not None:
        summary = {
            "regions": {n: d.summary() for n, d in daemon.supervisor.doses().items()},
            "trips": trips,
        }
        print("\n".join(eventfmt.summary_lines(summary)))
    return EXIT_OK
