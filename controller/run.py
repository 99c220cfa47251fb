"""``gunguard run``: load the config, build the daemon, run it; exit codes for systemd."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from controller import configfile, eventfmt
from controller import reasons as why
from controller.clock import RealClock
from controller.configfile import ConfigError
from controller.control_socket import daemon_socket_path
from controller.daemon import Daemon, play_live, print_events_live
from controller.ledger import open_ledger, supervisor_probe
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
    # The treatment history: a store that cannot be used is left untouched; the daemon
    # still starts (power off) and refuses every region with storage_fault. A simulated
    # gun never writes into the real history: a temporary store unless --db or
    # storage.path says where.
    scratch = None
    store: Path | None = Path(args.db).resolve() if getattr(args, "db", None) else None
    if store is None and scenario is not None and cfg.storage.path is None:
        scratch = tempfile.TemporaryDirectory(prefix="gunguard-sim-")
        store = Path(scratch.name) / "history.db"
    ledger = open_ledger(cfg, RealClock(), path=store)
    if ledger.fault is not None:
        print(
            f"gunguard: treatment history unavailable: {ledger.fault}; every region is "
            f"refused ({why.STORAGE_FAULT}) and the file is left untouched",
            file=sys.stderr,
        )
    try:
        daemon = Daemon(cfg, simulated_gun=scenario is not None, book=ledger)
    except Exception as exc:
        ledger.close()
        if scratch is not None:
            scratch.cleanup()
        log.critical("hardware initialisation failed: %s", exc)
        print(f"gunguard: hardware initialisation failed: {exc}", file=sys.stderr)
        return EXIT_HARDWARE
    ledger.set_fault_handler(lambda detail: daemon.supervisor.trip(why.STORAGE_FAULT, detail))
    ledger.set_probe(supervisor_probe(daemon.supervisor))
    ledger.follow_config(lambda: daemon.supervisor.cfg)  # a SIGHUP reload reaches it too
    if scratch is not None:
        daemon.add_closer(scratch.cleanup)  # (closers run last-added first)
    daemon.add_closer(ledger.close)  # after power is off: stores the last counted seconds
    try:
        control = getattr(args, "control_socket", None)
        daemon.serve_operator(daemon_socket_path(cfg, control, simulated=scenario is not None))
    except Exception as exc:  # the daemon has cut power and released the pins
        log.critical("operator interface failed: %s", exc)
        print(f"gunguard: {exc}", file=sys.stderr)
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
