"""``gunguard run``: load the config, build the daemon, run it; exit codes for systemd."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from gunguard.config import loader as configfile
from gunguard.config.loader import ConfigError
from gunguard.config.schema import GunguardConfig
from gunguard.core.clock import RealClock
from gunguard.core.reasons import RefusalReason
from gunguard.operator import eventfmt
from gunguard.operator.server import daemon_socket_path
from gunguard.service.daemon import Daemon
from gunguard.service.rt import apply_realtime
from gunguard.service.systemd import attach_systemd
from gunguard.sim.realtime import play_live, print_events_live
from gunguard.sim.scenario import check_scenario, load_scenario
from gunguard.sim.trace import TraceRecorder
from gunguard.store.ledger import Ledger, open_ledger

log = logging.getLogger(__name__)

EXIT_OK, EXIT_CONFIG, EXIT_HARDWARE = 0, configfile.EXIT_CONFIG, 3


def open_recorder(path: Path, cfg: GunguardConfig, config: str) -> TraceRecorder:
    """The ``--record`` trace, its header written (OSError: it cannot be written)."""
    given = Path(config).expanduser()
    name = str(given.resolve()) if given.is_file() else config  # a shipped name stays one
    return TraceRecorder(path, cfg, RealClock(), config=name)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = configfile.load(args.config)
        scenario = load_scenario(Path(args.sim_gun)) if args.sim_gun else None
        if scenario is not None:
            check_scenario(scenario, cfg)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("invalid configuration: %s", problem)
            print(f"gunguard: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    # The treatment history, opened once the hardware is up (a failed start writes
    # nothing): a store that cannot be used is left untouched; the daemon still starts
    # (power off) and refuses every region with storage_fault. A simulated gun never
    # writes into the real history: a temporary store unless --db or storage.path says.
    scratch = None
    store: Path | None = Path(args.db).resolve() if getattr(args, "db", None) else None
    if store is None and scenario is not None and cfg.storage.path is None:
        scratch = tempfile.TemporaryDirectory(prefix="gunguard-sim-")
        store = Path(scratch.name) / "history.db"
    opened: list[Ledger] = []
    recorder = None
    if getattr(args, "record", None):
        try:
            recorder = open_recorder(Path(args.record), cfg, args.config)
        except OSError as exc:
            print(f"gunguard: cannot record to {args.record}: {exc}", file=sys.stderr)
            return EXIT_CONFIG

    def open_book() -> Ledger:
        ledger = open_ledger(cfg, RealClock(), path=store)
        opened.append(ledger)
        if ledger.fault is not None:
            print(
                f"gunguard: treatment history unavailable: {ledger.fault}; every region is "
                f"refused ({RefusalReason.STORAGE_FAULT}) and the file is left untouched",
                file=sys.stderr,
            )
        return ledger

    try:
        daemon = Daemon(cfg, simulated_gun=scenario is not None, book=open_book, tap=recorder)
    except Exception as exc:
        if recorder is not None:
            recorder.close()
        for ledger in opened:
            ledger.close()
        if scratch is not None:
            scratch.cleanup()
        log.critical("hardware initialisation failed: %s", exc)
        print(f"gunguard: hardware initialisation failed: {exc}", file=sys.stderr)
        return EXIT_HARDWARE
    if scratch is not None:
        daemon.add_closer(scratch.cleanup)  # (closers run last-added first)
    for ledger in opened:
        daemon.add_closer(ledger.close)  # after power is off: stores the last counted seconds
    if recorder is not None:
        # Events reach it on the dispatcher thread; it closes once every event up to
        # "power off" was delivered (closers run after the dispatcher stops).
        daemon.bus.subscribe(recorder.on_event)
        daemon.add_stop_callback(recorder.stopping)
        daemon.add_closer(recorder.close)
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
            logging.getLogger("gunguard.core.supervisor").setLevel(logging.CRITICAL)
        # With --record, times count from the recording's start, as its replay's do.
        since = recorder.t0 if recorder is not None else daemon.clock.monotonic()
        print_events_live(daemon.bus, as_json=args.json, since=since)
        trips: list[str] = []
        daemon.bus.subscribe(
            lambda e: trips.append(e.fields["reason"]) if e.kind == "trip" else None
        )
        assert daemon.sim_gun_driver is not None
        daemon.add_thread(play_live(daemon, daemon.sim_gun_driver, scenario))
    daemon.run()
    if scenario is not None:
        summary = {
            "regions": {n: d.summary() for n, d in daemon.supervisor.doses().items()},
            "trips": trips,
        }
        print("\n".join(eventfmt.summary_lines(summary)))
    return EXIT_OK
