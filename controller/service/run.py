"""``gunguard run``: load the config, build the daemon, run it; exit codes for systemd."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import tempfile
from pathlib import Path

from gunguard.config import loader as configfile
from gunguard.config.loader import ConfigError
from gunguard.config.schema import GunguardConfig
from gunguard.core import events
from gunguard.core.clock import RealClock
from gunguard.core.events import Event
from gunguard.core.exits import Exit
from gunguard.core.reasons import RefusalReason
from gunguard.operator import eventfmt
from gunguard.operator.server import daemon_socket_path
from gunguard.plan.check import check_plan
from gunguard.plan.files import LoadedPlan, load_plan
from gunguard.plan.runner import SessionRefused
from gunguard.service.daemon import Daemon
from gunguard.service.rt import apply_realtime
from gunguard.service.systemd import attach_systemd
from gunguard.sim.realtime import ScenarioPlayer, play_live, print_events_live
from gunguard.sim.scenario import Scenario, check_scenario, find_scenario, judge, load_scenario
from gunguard.sim.trace import TraceRecorder
from gunguard.store.ledger import Ledger, open_ledger

log = logging.getLogger(__name__)


def describe_exception(exc: BaseException) -> str:
    """An error for people: its message, with the type only when the message is empty."""
    text = str(exc).strip()
    return text or type(exc).__name__


EXIT_OK, EXIT_EXPECTATION, EXIT_CONFIG, EXIT_HARDWARE = Exit.OK, Exit.NO, Exit.CONFIG, Exit.HARDWARE


#: What to try when the hardware cannot be used (every start-up error names it).
NEXT_STEPS = (
    "on a Raspberry Pi, install the [pi] extra (pip install 'gunguard[pi]') and check the "
    "wiring and boot settings (docs/raspberry-pi.md); without a Pi, run against the "
    "simulated gun (gunguard run --sim-gun demo-session) or on mock pins "
    "(hardware: {pin_factory: mock} in the config)"
)


def _say(text: str) -> None:
    """One line for the person (on stderr, which the journal also records: once)."""
    print(f"gunguard: {text}", file=sys.stderr)


def firmware_choice_problems(
    cfg: GunguardConfig, scenario: Scenario | None, sim_firmware: bool
) -> list[str]:
    """Why ``run`` cannot talk to the firmware it was asked to (empty: it can).

    The built-in simulated firmware exists only for a simulated gun, and only when asked
    for (``--sim-firmware``): with ``--sim-gun`` alone, ``serial.port`` is the gun's
    firmware (hardware in the loop), so scenario steps that act on the built-in
    firmware (``link:``, ``firmware:``) have nothing to act on.
    """
    problems = []
    if sim_firmware and scenario is None:
        problems.append("--sim-firmware needs --sim-gun (the simulated motor it drives)")
    if sim_firmware and cfg.serial is None:
        problems.append("--sim-firmware needs a serial: section in the config")
    if scenario is not None and not sim_firmware:
        steps = sorted({s.at for s in scenario.steps if s.link or s.firmware})
        if steps:
            problems.append(
                f"the scenario's link:/firmware: steps (at {', '.join(f'{t:g}' for t in steps)}"
                " s) act on the built-in simulated firmware: add --sim-firmware"
            )
    return problems


def _plan(
    args: argparse.Namespace,
    cfg: GunguardConfig,
    scenario: Scenario | None,
    scenario_path: Path | None,
) -> LoadedPlan | None:
    """``--plan`` (else a scenario's ``plan:``), checked against ``cfg``: a plan that does
    not fit is a config error (exit 2), found before any hardware is touched."""
    name = getattr(args, "plan", None)
    relative_to = None
    if name is None and scenario is not None and scenario.plan is not None:
        name = scenario.plan
        relative_to = scenario_path.resolve().parent if scenario_path is not None else None
    if name is None:
        return None
    loaded = load_plan(name, relative_to=relative_to)
    today = dt.datetime.now(dt.UTC).date()
    problems, warnings = check_plan(loaded, cfg, args.config, today)
    if problems:
        raise ConfigError(problems)
    for line in configfile.warning_lines(warnings):
        print(line, file=sys.stderr)
    return loaded


def open_recorder(path: Path, cfg: GunguardConfig, config: str) -> TraceRecorder:
    """The ``--record`` trace, its header written (OSError: it cannot be written)."""
    given = Path(config).expanduser()
    name = str(given.resolve()) if given.is_file() else config  # a shipped name stays one
    return TraceRecorder(path, cfg, RealClock(), config=name)


def run(args: argparse.Namespace) -> int:
    try:
        cfg, warnings = configfile.load_with_warnings(args.config)
        scenario_path = find_scenario(args.sim_gun) if args.sim_gun else None
        scenario = load_scenario(scenario_path) if scenario_path is not None else None
        if scenario is not None:
            check_scenario(scenario, cfg)
        plan = _plan(args, cfg, scenario, scenario_path)
    except ConfigError as exc:
        print("\n".join(configfile.error_lines(exc)), file=sys.stderr)
        return EXIT_CONFIG
    for line in configfile.warning_lines(warnings):
        print(line, file=sys.stderr)
    sim_firmware = bool(getattr(args, "sim_firmware", False))
    choice = firmware_choice_problems(cfg, scenario, sim_firmware)
    for problem in choice:
        log.error("cannot run: %s", problem)
        print(f"gunguard: {problem}", file=sys.stderr)
    if choice:
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
        daemon = Daemon(
            cfg,
            simulated_gun=scenario is not None,
            simulated_firmware=sim_firmware,
            book=open_book,
            tap=recorder,
        )
    except Exception as exc:
        if recorder is not None:
            recorder.close()
        for ledger in opened:
            ledger.close()
        if scratch is not None:
            scratch.cleanup()
        _say(f"hardware initialisation failed: {describe_exception(exc)}. Next: {NEXT_STEPS}")
        return EXIT_HARDWARE
    if plan is not None:
        try:
            daemon.runner.adopt(plan)
        except SessionRefused as exc:  # the store cannot be written: sessions refuse too
            _say(f"plan {plan.name} not adopted: {exc.message}")
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
        _say(describe_exception(exc))
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
        happened: list[Event] = []
        daemon.bus.subscribe(happened.append)
        assert daemon.sim_gun_driver is not None
        player = play_live(daemon, daemon.sim_gun_driver, scenario)
        daemon.add_thread(player)
    daemon.run()
    if scenario is None:
        return EXIT_OK
    summary = {
        "regions": {n: d.summary() for n, d in daemon.supervisor.doses().items()},
        "trips": [e.fields["reason"] for e in happened if e.kind == events.TRIP],
    }
    print("\n".join(eventfmt.summary_lines(summary)))
    return _expectations(scenario, happened, player, daemon.clock.monotonic())


def _expectations(
    scenario: Scenario, happened: list[Event], player: ScenarioPlayer, now: float
) -> int:
    """The scenario's ``expect:`` judged on what happened in real time (like simulate)."""
    zero = player.started_at if player.started_at is not None else now
    timed = [Event(e.t - zero, e.kind, e.fields) for e in happened]
    reached = player.reached(now)
    failed = False
    for expectation, verdict in judge(scenario, timed, reached):
        failed = failed or verdict == "FAILED"
        if verdict == "not reached":
            verdict = f"not reached (stopped at {reached:.1f} s of {scenario.duration:g})"
        print(f"expect {expectation.describe()}: {verdict}", file=sys.stderr)
    return EXIT_EXPECTATION if failed else EXIT_OK
