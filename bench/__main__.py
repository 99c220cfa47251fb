"""``make bench`` = ``python -m bench``: run every benchmark, write the results.

A full run takes about a quarter of an hour and writes ``bench/results/latest.json``
and ``latest.md``. ``--quick`` (short runs, few trials) and ``--only`` write
``partial.json.tmp`` / ``partial.md.tmp`` instead, so a quick look never replaces the
record. Run it on an otherwise idle machine: every real-time number depends on it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import breach, looptiming, plansim, simspeed, socketflood, startup, store
from bench.common import FAILED, MISSED, ROOT, Section, machine
from bench.report import fmt, write

RESULTS = Path(__file__).resolve().parent / "results"


def _plan(args: argparse.Namespace) -> list[tuple[str, Callable[[], Section]]]:
    q = args.quick
    trials = args.trials or (200 if q else 2000)
    seconds = args.seconds or (8.0 if q else 60.0)
    return [
        (
            "breach_overspeed",
            lambda: breach.overspeed_realtime(trials, 0 if q else trials // 2),
        ),
        ("overspeed_periods", lambda: breach.overspeed_virtual(5 if q else 40)),
        (
            "breach_overforce",
            lambda: breach.overforce_realtime(trials, 20 if q else 200),
        ),
        (
            "loop_timing",
            lambda: looptiming.loop_timing(seconds, 4.0 if q else 15.0, 2 if q else 3),
        ),
        ("socket_flood", lambda: socketflood.flood_section(seconds)),
        ("store", lambda: store.ledger_section(seconds / 2)),
        ("simulate_speed", lambda: simspeed.simulate_speed(1 if q else 3)),
        ("plan_4_weeks", lambda: plansim.plan_simulation(1 if q else 2)),
        ("daemon_process", lambda: startup.startup(2 if q else 5)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="gunguard benchmarks (issue 7)."
    )
    parser.add_argument("--quick", action="store_true", help="short runs, few trials")
    parser.add_argument("--only", help="comma-separated benchmark names (see --list)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--trials", type=int, help="breach-to-cut trials (default 2000)")
    parser.add_argument("--seconds", type=float, help="seconds per loop-timing run (60)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    plan = _plan(args)
    names = [name for name, _ in plan]
    if args.list:
        print("\n".join(names))
        return 0
    only = [n.strip() for n in args.only.split(",")] if args.only else []
    unknown = [n for n in only if n not in names]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; one of {', '.join(names)}")
    args.out.mkdir(parents=True, exist_ok=True)
    # The supervisor logs every trip the benchmarks provoke: to a file, not the terminal.
    logging.basicConfig(
        level=logging.WARNING,
        filename=args.out / "last-run.log.tmp",
        filemode="w",
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
    )
    info = machine()
    started = time.perf_counter()
    sections: list[Section] = []
    for name, run in plan:
        if only and name not in only:
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            section = run()
        except Exception as exc:
            traceback.print_exc()
            section = Section(name, name)
            section.metric(name, f"{name} failed", None, "", note=str(exc))
            section.notes.append(f"failed: {type(exc).__name__}: {exc}")
        section.seconds = section.seconds or time.perf_counter() - t0
        sections.append(section)
        for m in section.metrics:
            print(f"  {m.label}: {fmt(m.value)} {m.unit} [{m.status}]", file=sys.stderr)
    command = (
        "make bench"
        if not (args.quick or only)
        else "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    doc = {
        "command": command,
        "quick": args.quick,
        "only": only,
        "machine": info,
        "wall_minutes": (time.perf_counter() - started) / 60.0,
    }
    stem = "partial" if (args.quick or only) else "latest"
    paths = write(args.out, stem, doc, sections)
    if stem == "partial":
        for p in paths:
            p.rename(p.with_name(p.name + ".tmp"))
        paths = [p.with_name(p.name + ".tmp") for p in paths]
    for p in paths:
        try:
            shown = p.relative_to(ROOT)
        except ValueError:
            shown = p
        print(f"bench: wrote {shown}", file=sys.stderr)
    missed = [m for s in sections for m in s.metrics if m.status in (MISSED, FAILED)]
    if missed:
        print(f"bench: {len(missed)} target(s) missed or failed", file=sys.stderr)
    return 0  # a missed target is a result, not a failure of the benchmark


if __name__ == "__main__":
    sys.exit(main())
