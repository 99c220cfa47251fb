"""``gunguard`` command line: run, check-config, schema, simulate, power-off, ...

Exit status, the same for every command (:class:`gunguard.core.exits.Exit`, the
README's table): 0 done; 1 the answer is no (a scenario expectation failed, a refusal);
2 an invalid config or scenario (in the unit's RestartPreventExitStatus=, so systemd
does not restart-loop on a bad file); 3 the hardware could not be set up or driven;
4 nothing to talk to or read (no daemon, an unreadable store).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gunguard import __version__
from gunguard.config import loader as configfile
from gunguard.config.loader import EXIT_CONFIG, ConfigError
from gunguard.config.schema import GunguardConfig, HardwareConfig
from gunguard.core.exits import Exit

EXIT_OK, EXIT_EXPECTATION, EXIT_HARDWARE = Exit.OK, Exit.NO, Exit.HARDWARE
DEFAULT_CONFIG = "default"

log = logging.getLogger("gunguard")


def _load_config(name: str) -> GunguardConfig:
    return configfile.load(name)


def _report_config_error(exc: ConfigError) -> int:
    print("\n".join(configfile.error_lines(exc)), file=sys.stderr)
    return EXIT_CONFIG


def cmd_check_config(args: argparse.Namespace) -> int:
    from gunguard.config.summary import summary_lines

    try:
        cfg, warnings = configfile.load_with_warnings(args.file)
    except ConfigError as exc:
        return _report_config_error(exc)
    for line in configfile.warning_lines(warnings):
        print(line, file=sys.stderr)
    print("\n".join(summary_lines(args.file, cfg)))
    print(f"config hash {configfile.config_hash(cfg)}")
    # -- trusted inputs (calibration): its own block, see gunguard.config.trusted ------------
    from gunguard.config.trusted import trusted_input_lines

    print("\n".join(trusted_input_lines(cfg, configfile.resolve(args.file))))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(GunguardConfig.model_json_schema(), indent=2))
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from gunguard.sim.simulate import replay, simulate

    if (args.scenario is None) == (args.replay is None):
        print("gunguard simulate: give a SCENARIO or --replay FILE (one of them)", file=sys.stderr)
        return EXIT_CONFIG
    if args.replay is not None:
        return replay(Path(args.replay), config=args.config, as_json=args.json, db=args.db)
    return simulate(Path(args.scenario), config=args.config, as_json=args.json, db=args.db)


def cmd_run(args: argparse.Namespace) -> int:
    from gunguard.service.run import run

    return run(args)


def cmd_history(args: argparse.Namespace) -> int:
    """Treatments, doses, trips, and when each region may next be treated."""
    from gunguard.operator.history import history
    from gunguard.store.ledger import default_storage_path

    if args.db is not None:
        path = Path(args.db)
    else:
        try:
            path = default_storage_path(_load_config(args.config))
        except ConfigError as exc:
            return _report_config_error(exc)
    return history(path, region=args.region, as_json=args.json)


def cmd_power_off(args: argparse.Namespace) -> int:
    """ExecStopPost=: force the motor pin to its off level, whatever happened before."""
    try:
        hardware = _load_config(args.config).hardware
    except ConfigError as exc:
        _report_config_error(exc)
        hardware = _hardware_section_only(args.config)
        if hardware is None:
            print(
                "gunguard power-off: the hardware section is unusable too; not guessing a pin "
                "(the gate pull-down must hold the motor off)",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        print("gunguard power-off: using the file's valid hardware section", file=sys.stderr)
    from gunguard.hardware.poweroff import force_power_off

    motor = hardware.motor_power
    try:
        force_power_off(motor.pin, motor.active_high, hardware.pin_factory)
    except Exception as exc:  # one line for the journal, never a traceback
        text = str(exc).strip() or type(exc).__name__
        print(
            f"gunguard power-off: could not drive {motor.pin} off: {text} "
            "(only the gate pull-down holds the motor off now)",
            file=sys.stderr,
        )
        return EXIT_HARDWARE
    return EXIT_OK


def _hardware_section_only(source: str) -> HardwareConfig | None:
    """The ``hardware:`` section alone, when the rest of the file is what is wrong.

    A stop step must drive the pin the daemon really used, never a default that may be
    another device's pin; if the section itself is broken, it drives nothing.
    """
    try:
        data, _ = configfile.parse_yaml(configfile.resolve(source).read_text(), source)
        return HardwareConfig.model_validate((data or {}).get("hardware", {}))
    except Exception:
        return None


def cmd_plan(args: argparse.Namespace) -> int:
    """``plan check FILE`` and ``plan status``: a treatment plan, and where it stands."""
    from gunguard.plan import command

    if args.plan_command == "check":
        return command.check(args.file, args.config)
    return command.status(args.db, args.config, args.plan, args.json)


def cmd_client(args: argparse.Namespace) -> int:
    """status, region, reset, stop, watch, session, pain: a client of the control socket."""
    from gunguard.operator import client, dashboard

    module = dashboard if args.command == "watch" else client
    command: Callable[[argparse.Namespace], int] = getattr(module, f"cmd_{args.command}")
    return command(args)


def cmd_report(args: argparse.Namespace) -> int:
    """A treatment's stored telemetry as a PNG plot and/or JSON; with --plan, the treatment
    plan's record as a PDF, a CSV and a FHIR bundle."""
    plan_outputs = {"--pdf": args.pdf, "--csv": args.csv, "--fhir": args.fhir}
    if args.plan:
        if args.plot or args.json:
            print(
                "gunguard report: --plan writes --pdf, --csv, --fhir (not --plot, --json)",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        from gunguard.operator.plan_export import plan_report_command

        return plan_report_command(args.db, args.config, pdf=args.pdf, csv=args.csv, fhir=args.fhir)
    given = [flag for flag, value in plan_outputs.items() if value]
    if given:
        print(f"gunguard report: {', '.join(given)} go with --plan", file=sys.stderr)
        return EXIT_CONFIG
    from gunguard.operator.report import report_command

    return report_command(
        args.db,
        args.config,
        args.treatment,
        args.plot,
        args.json,
        session=args.session or None,
        whole_session=args.session is not None,
    )


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Measure the force sensor's zero and scale, or the tach's pulses per percussion."""
    from gunguard.service.calibrate import calibrate

    return calibrate(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gunguard",
        description="Safety supervisor for a percussive massage gun on a Raspberry Pi.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"gunguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "run the supervisor daemon")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="config file or shipped name")
    p.add_argument(
        "--sim-gun",
        metavar="SCENARIO",
        help="run against the simulated gun on mock pins, playing SCENARIO in real time",
    )
    p.add_argument(
        "--sim-firmware",
        action="store_true",
        help="with --sim-gun and a serial: section: the built-in simulated firmware on a pty "
        "instead of serial.port (without it, serial.port is the gun's firmware: a real board "
        "or another peer, and the simulated motor follows what it reports)",
    )
    p.add_argument("--json", action="store_true", help="with --sim-gun: events as JSON lines")
    p.add_argument(
        "--db",
        help="treatment store (default: storage.path, else the state directory; "
        "with --sim-gun a temporary one)",
    )
    p.add_argument(
        "--control-socket",
        metavar="PATH",
        type=lambda path: str(Path(path).absolute()),  # before lgpio changes the directory
        help="listen for operators here (default: control_socket.path, else control.sock in "
        "$RUNTIME_DIRECTORY or /run/gunguard; with --sim-gun, none unless given)",
    )

    p.add_argument(
        "--plan",
        metavar="PLAN",
        help="adopt this treatment plan (a file or shipped name) for guided sessions; "
        "without it, the plan adopted last (docs/plans.md)",
    )
    p.add_argument(
        "--record",
        metavar="FILE",
        help="write the raw sensor trace (tach edges, force readings, operator actions) to "
        "FILE as JSON lines, for `gunguard simulate --replay` (docs/scenarios.md)",
    )

    p = add("check-config", cmd_check_config, "validate a config file (exit 0, or 2 with errors)")
    p.add_argument("file", help="config file or shipped name")

    add("schema", cmd_schema, "print the config's JSON Schema (for editors)")

    p = add("simulate", cmd_simulate, "run a scenario, or replay a recorded trace, in virtual time")
    p.add_argument("scenario", nargs="?", help="scenario YAML file")
    p.add_argument(
        "--replay",
        metavar="FILE",
        help="replay a trace written by `gunguard run --record` instead of a scenario",
    )
    p.add_argument(
        "--config",
        help="config file or shipped name (overrides the scenario's, or the recorded one)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.add_argument("--db", help="treatment store to use (default: a temporary one)")

    p = add("history", cmd_history, "treatments, doses, trips and when each region may be next")
    p.add_argument("--region", help="only this region")
    p.add_argument("--json", action="store_true", help="one JSON object (docs/history.md)")
    p.add_argument("--db", help="the store (default: storage.path of --config, else the state dir)")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="config that names the store")

    p = add("power-off", cmd_power_off, "force the motor power pin off (systemd ExecStopPost=)")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="config file or shipped name")

    p = add(
        "calibrate",
        cmd_calibrate,
        "measure the trusted inputs (force zero and scale: daemon stopped; tach pulses per "
        "percussion: daemon running), write the calibration file, record it in the history",
    )
    p.add_argument("--config", default=DEFAULT_CONFIG, help="the config the daemon runs with")
    p.add_argument(
        "--steps",
        default="zero,scale",
        help="zero,scale (the default) or zero alone: daemon stopped; tach: daemon running",
    )
    p.add_argument("--weight-kg", type=float, help="scale: the known weight, in kg")
    p.add_argument("--reference-ppm", type=float, help="tach: the gun's known rate, in ppm")
    p.add_argument(
        "--reference-from",
        choices=("setting", "firmware"),
        default="setting",
        help="tach: the known rate is the gun's speed setting (default) or its firmware's",
    )
    p.add_argument("--samples", type=int, help="readings per force step (default 64)")
    p.add_argument("--seconds", type=float, help="tach: measuring time (default 3 s)")
    p.add_argument("--output", help="calibration file (default: the config's hardware.calibration)")
    p.add_argument("--db", help="treatment history (default: storage.path, else the state dir)")
    p.add_argument("--socket", help="the daemon's control socket (default: as `gunguard status`)")
    p.add_argument("--yes", action="store_true", help="ask nothing: the answers are the flags")

    from gunguard.operator.client import add_socket_options

    p = add("status", cmd_client, "show the running daemon's state, rate, force and doses")
    p.add_argument("--json", action="store_true", help="the status as JSON")
    add_socket_options(p)
    p = add("region", cmd_client, "select (and so arm) a body region")
    p.add_argument("name", help="region name, e.g. calf-left")
    add_socket_options(p)
    add_socket_options(add("reset", cmd_client, "clear a latched trip (power stays off)"))
    add_socket_options(add("stop", cmd_client, "disarm: deselect the region, motor power off"))
    p = add("watch", cmd_client, "live dashboard of the running daemon")
    p.add_argument("--hz", type=float, default=10.0, help="updates per second, 1-50 (default 10)")
    p.add_argument(
        "--wait", type=float, default=0.0, metavar="S", help="wait up to S s for the daemon"
    )
    add_socket_options(p)

    p = add("session", cmd_client, "a guided session of the treatment plan: start, next, stop")
    p.add_argument(
        "action",
        choices=("start", "next", "stop"),
        help="start (or resume a paused step), next (confirm: the next step), stop",
    )
    p.add_argument("--plan", metavar="PLAN", help="start: adopt this plan (file or shipped name)")
    add_socket_options(p)
    p = add("pain", cmd_client, "record a pain score, 0 (none) to 10 (the worst imaginable)")
    from gunguard.operator.client import pain_value

    p.add_argument("value", type=pain_value, metavar="N", help="0-10")
    p.add_argument(
        "--when",
        choices=("before", "after", "morning"),
        help="before or after a session, or the next morning (needed when no session runs)",
    )
    add_socket_options(p)

    p = add("plan", cmd_plan, "treatment plans: check a plan file, show where the plan stands")
    plan_sub = p.add_subparsers(dest="plan_command", required=True, metavar="check|status")
    q = plan_sub.add_parser(
        "check", help="validate a plan against a config", description="validate a plan"
    )
    q.add_argument("file", help="plan file or shipped name")
    q.add_argument(
        "--config", help="the config to check against (default: the plan's config:, else default)"
    )
    q = plan_sub.add_parser(
        "status",
        help="phase, next session, what is due, held progression",
        description="where the adopted plan stands, from the treatment history",
    )
    q.add_argument("--json", action="store_true", help="one JSON object (docs/plans.md)")
    q.add_argument("--db", help="the store (default: storage.path of --config, else the state dir)")
    q.add_argument("--config", default=DEFAULT_CONFIG, help="config that names the store")
    q.add_argument("--plan", help="judge by this plan file instead of the one adopted last")

    p = add("report", cmd_report, "plot a treatment's or a session's rate, force and dose")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "treatment", nargs="?", type=int, help="treatment number (see history); default: newest"
    )
    which.add_argument("--last", action="store_true", help="the newest treatment (the default)")
    which.add_argument(
        "--session",
        nargs="?",
        type=int,
        const=0,
        metavar="N",
        help="a whole daemon session, every region (default: the newest)",
    )
    which.add_argument(
        "--plan",
        action="store_true",
        help="the treatment plan's record (docs/plans.md): a summary, or --pdf/--csv/--fhir",
    )
    p.add_argument("--plot", metavar="FILE.png", help="draw the plot into this PNG file")
    p.add_argument("--json", action="store_true", help="the plotted numbers as JSON")
    p.add_argument(
        "--pdf", metavar="FILE.pdf", help="with --plan: the report for a physiotherapist"
    )
    p.add_argument(
        "--csv", metavar="FILE.csv", help="with --plan: every step, pain score, decision"
    )
    p.add_argument("--fhir", metavar="FILE.json", help="with --plan: a FHIR R4 JSON Bundle")
    p.add_argument("--db", help="the store (default: storage.path of --config, else the state dir)")
    p.add_argument(
        "--config", help="config for the limit lines (default: the shipped one the session ran)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from gunguard.service.logsetup import setup_logging, stop_logging

    setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (`gunguard status | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    finally:
        stop_logging()  # every queued line is written before the process ends


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
