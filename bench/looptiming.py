"""Loop timing and CPU cost: the control loop at 1000 Hz in real time, on mock pins.

Each run is a fresh worker process (``python -m bench.looptiming --worker ...``) built
like the daemon: supervisor, motor switch, tachometer and force sensor on mock pins,
:class:`~gunguard.core.loop.RealtimeLoop` in the main thread, the
:class:`~gunguard.core.loop.LoopWatchdog` thread, a gun percussing at 2200 ppm with 30 N
of contact on ``calf-left`` (so every tick does its full work: rate, force, dose). A
worker of its own means its CPU time, heap and scheduling policy are the daemon's
alone, not the benchmark's.

Lateness of tick *n* is its start minus its deadline. The deadlines are the loop's own
(``start + n * period``, re-based after a stall longer than a period, exactly as
``RealtimeLoop.run`` does), reconstructed from each tick's start and end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from itertools import pairwise
from typing import Any

from bench.common import (
    DIST_COLUMNS,
    ROOT,
    Section,
    Table,
    Target,
    busy_processes,
    dist_row,
    histogram,
    proc_stat_steal,
    scaled,
    summarize,
)

LATE_IDLE = Target("<=", 1.0)  # ms, p99.9
LATE_LOADED = Target("<=", 2.0)  # ms, p99.9
CPU_TARGET = Target("<=", 3.0)  # % of one core
LATENESS_EDGES_US = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
FIFO_PRIORITY = 20  # what systemd/gunguard.service sets (CPUSchedulingPriority=20)
REGION = "calf-left"
GUN_PPM = 2200.0
GUN_FORCE_N = 30.0


# -- the worker (a separate process) -------------------------------------------------------
def lateness_ns(starts: list[int], ends: list[int], period_ns: int) -> tuple[list[int], int]:
    """Each tick's lateness against the loop's own deadlines; and how often it re-based."""
    late: list[int] = []
    rebases = 0
    deadline = starts[0]
    for i, start in enumerate(starts):
        late.append(start - deadline)
        deadline += period_ns
        if i < len(ends) and deadline - ends[i] < -period_ns:
            deadline = ends[i]  # RealtimeLoop: "restart the schedule from now"
            rebases += 1
    return late, rebases


def reference(seconds: float, fifo: int | None) -> dict[str, Any]:
    """The floor: a bare ``time.sleep`` loop on the same absolute schedule, no gunguard."""
    if fifo is not None:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo))
    period = 1_000_000
    starts: list[int] = []
    ends: list[int] = []
    clock_ns = time.perf_counter_ns
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    deadline = clock_ns()
    stop = deadline + round(seconds * 1e9)
    while deadline < stop:
        starts.append(clock_ns())
        ends.append(clock_ns())
        deadline += period
        delay = deadline - clock_ns()
        if delay > 0:
            time.sleep(delay / 1e9)
        elif delay < -period:
            deadline = clock_ns()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    return _timing(starts, ends, period, wall, cpu, ru0, ru1, 20.0)


def _timing(
    starts: list[int],
    ends: list[int],
    period_ns: int,
    wall: float,
    cpu: float,
    ru0: Any,
    ru1: Any,
    max_gap_ms: float,
) -> dict[str, Any]:
    late, rebases = lateness_ns(starts, ends, period_ns)
    late_ms = [x / 1e6 for x in late]
    n = min(len(starts), len(ends))
    duration_ms = [(ends[i] - starts[i]) / 1e6 for i in range(n)]
    # What the supervisor's own gap check and the watchdog see: tick start to tick start.
    gap_ms = [(starts[i] - starts[i - 1]) / 1e6 for i in range(1, len(starts))]
    return {
        "seconds": wall,
        "ticks": len(starts),
        "rate_hz": len(starts) / wall,
        "lateness_ms": summarize(late_ms),
        "histogram_us": histogram([x * 1000 for x in late_ms], LATENESS_EDGES_US),
        "tick_ms": summarize(duration_ms),
        "gap_ms": summarize(gap_ms),
        "over_1ms": sum(1 for x in late_ms if x > 1.0),
        "gaps_over_max_gap": sum(1 for x in gap_ms if x > max_gap_ms),
        "rebases": rebases,
        "cpu_s": cpu,
        "cpu_user_s": ru1.ru_utime - ru0.ru_utime,
        "cpu_system_s": ru1.ru_stime - ru0.ru_stime,
        "cpu_percent": 100.0 * cpu / wall,
        "cpu_s_per_min": 60.0 * cpu / wall,
        "voluntary_switches": ru1.ru_nvcsw - ru0.ru_nvcsw,
        "involuntary_switches": ru1.ru_nivcsw - ru0.ru_nivcsw,
    }


def worker(
    seconds: float,
    fifo: int | None,
    freeze_gc: bool,
    *,
    watchdog: bool = True,
    gun: bool = True,
    ledger: str | None = None,
    flood: str | None = None,
    rate_hz: float | None = None,
) -> dict[str, Any]:
    from bench.rig import Percussion, RealtimeRig
    from gunguard.config import loader as configfile
    from gunguard.core import events
    from gunguard.service.rt import apply_realtime

    cfg = configfile.load("default")
    if rate_hz is not None:  # an experiment: the same daemon at another loop rate
        data = cfg.model_dump(mode="json")
        data["loop"]["rate_hz"] = rate_hz
        cfg = configfile.validate(data, "default (bench)")
    # Before the rig and any thread exist: threads inherit the policy. (The daemon does it
    # later, after start-up; here its 10-30 ms would count as a first loop gap.)
    applied = apply_realtime(fifo, freeze_gc)
    policy = os.sched_getscheduler(0)
    extras: list[Any] = []
    book = None
    if ledger is not None:
        from bench.harnesses import LedgerHarness

        harness = LedgerHarness(cfg, ledger)
        book = harness.ledger
        extras.append(harness)
    if flood is not None:
        from bench.harnesses import ServerHarness

        extras.append(ServerHarness(flood))
    rig = RealtimeRig(cfg, force_n=GUN_FORCE_N if gun else 0.0, wobble=True, book=book)
    sup = rig.supervisor
    for extra in extras:
        extra.start(rig)
    trips: list[str] = []
    trip_details: list[str] = []

    def on_event(event: Any) -> None:
        if event.kind == events.TRIP:
            trips.append(event.fields["reason"])
            trip_details.append(f"{event.fields['reason']}: {event.fields['detail']}")

    sup.bus.subscribe(on_event)
    if sup.select_region(REGION) is not None:
        raise SystemExit(f"{REGION} refused")

    starts: list[int] = []
    ends: list[int] = []
    tick = sup.tick
    clock_ns = time.perf_counter_ns

    def timed_tick() -> None:
        starts.append(clock_ns())
        tick()

    sup.tick = timed_tick  # type: ignore[method-assign]
    # The gap as the supervisor's own check sees it: between the `now`s of its ticks.
    nows: list[float] = []
    inner = sup._tick

    def seen_tick(now: float) -> None:
        nows.append(now)
        inner(now)

    sup._tick = seen_tick  # type: ignore[method-assign]
    loop_started: list[int] = []
    starting = getattr(sup, "loop_starting", None)
    if starting is not None:  # the loop re-arms the gap clock before its first tick

        def timed_starting() -> None:
            loop_started.append(clock_ns())
            starting()

        sup.loop_starting = timed_starting  # type: ignore[method-assign]
    rig.loop.add_hook(lambda now: ends.append(clock_ns()))
    percussion = Percussion(rig, GUN_PPM, rig.stop)
    if gun:
        percussion.start()
    timer = threading.Timer(seconds, rig.stop.set)
    # Harness set-up since the supervisor was built (ledger, selection, threads) is not
    # the loop's: tick once and only then start the watchdog, so neither counts it as a
    # loop gap. (The daemon's own start-up gap is measured by bench.startup.)
    tick()
    if watchdog:
        rig.watchdog.start()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = time.thread_time()
    process0 = time.process_time()
    wall0 = time.perf_counter()
    timer.start()
    rig.loop.run(rig.stop)  # the daemon runs the loop in its main thread
    wall = time.perf_counter() - wall0
    cpu_loop = time.thread_time() - cpu0
    cpu_process = time.process_time() - process0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    rig.watchdog.stop()  # as the daemon does at once: the loop has ended, not stalled
    trips, trip_details = list(trips), list(trip_details)  # what happened while it ran
    if gun:
        percussion.join(2.0)
    extra_results: dict[str, Any] = {}
    for extra in extras:
        extra_results.update(extra.stop())
    rig.close()
    result = _timing(
        starts,
        ends,
        round(1e9 / cfg.loop.rate_hz),
        wall,
        cpu_process,
        ru0,
        ru1,
        cfg.loop.max_loop_gap_ms,
    )
    if loop_started and starts:
        result["first_gap_ms"] = (starts[0] - loop_started[0]) / 1e6
    if len(nows) > 1:
        seen = [(b - a) * 1000.0 for a, b in pairwise(nows)]
        result["supervisor_gap_ms"] = summarize(seen)
    names = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_FIFO: "SCHED_FIFO"}
    result.update(
        cpu_loop_thread_s=cpu_loop,
        gun_edges=percussion.edges,
        trips=trips,
        trip_details=trip_details,
        policy=names.get(policy, str(policy)),
        realtime_applied=applied,
        gc_collections=[s["collections"] for s in gc.get_stats()],
        **extra_results,
    )
    return result


def _worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.looptiming")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fifo", type=int, default=None)
    parser.add_argument("--no-freeze-gc", action="store_true")
    parser.add_argument("--no-watchdog", action="store_true")
    parser.add_argument("--no-gun", action="store_true")
    parser.add_argument("--reference", action="store_true", help="a bare sleep loop")
    parser.add_argument("--rate-hz", type=float, help="loop.rate_hz (an experiment)")
    parser.add_argument("--ledger", choices=("normal", "stress"), help="record into a ledger")
    parser.add_argument("--flood", metavar="SOCKET", help="serve a control socket there")
    parser.add_argument(
        "--switch-interval", type=float, help="sys.setswitchinterval() (an experiment)"
    )
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    if args.reference:
        result = reference(args.seconds, args.fifo)
    else:
        result = worker(
            args.seconds,
            args.fifo,
            not args.no_freeze_gc,
            watchdog=not args.no_watchdog,
            gun=not args.no_gun,
            ledger=args.ledger,
            flood=args.flood,
            rate_hz=args.rate_hz,
        )
    print(json.dumps(result))


# -- the parent -------------------------------------------------------------------------------
def can_fifo() -> bool:
    """Whether this user may run SCHED_FIFO (root, CAP_SYS_NICE or RLIMIT_RTPRIO)."""
    try:
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import os, sys; "
                "os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(sys.argv[1])))",
                str(FIFO_PRIORITY),
            ],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def run_worker(seconds: float, fifo: int | None, *flags: str, side: Any = None) -> dict[str, Any]:
    """One worker process; adds ``machine_busy_pct``: all CPUs' use during it, in % of one.

    ``side`` (optional) runs beside the worker in this process: ``side.start()`` once the
    worker is up, ``side.stop()`` (a dict merged into the result) after it ended.
    """
    cmd = [sys.executable, "-m", "bench.looptiming", "--worker", "--seconds", str(seconds)]
    if fifo is not None:
        cmd += ["--fifo", str(fifo)]
    cmd += list(flags)
    busy0, total0, steal0 = proc_stat_steal()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    extra: dict[str, Any] = {}
    try:
        if side is not None:
            side.start()
        out, err = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if side is not None:
            extra = side.stop()
    busy1, total1, steal1 = proc_stat_steal()
    if proc.returncode != 0:
        raise RuntimeError(f"loop worker failed ({proc.returncode}): {err.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result.update(extra)
    cpus = os.cpu_count() or 1
    if total1 > total0:
        result["machine_busy_pct"] = 100.0 * cpus * (busy1 - busy0) / (total1 - total0)
        result["steal_pct"] = 100.0 * cpus * (steal1 - steal0) / (total1 - total0)
    return result


def longest_gap(result: dict[str, Any]) -> float:
    """The longest gap between ticks (ms), as the supervisor's own check saw it."""
    seen = result.get("supervisor_gap_ms") or result["gap_ms"]
    return float(seen["max"])


def _background(result: dict[str, Any], busy: int) -> float | None:
    """CPU used by other processes during a run (% of one core): machine - worker - load."""
    machine = result.get("machine_busy_pct")
    if machine is None:
        return None
    return max(0.0, machine - result["cpu_percent"] - 100.0 * busy)


def loop_timing(seconds: float, breakdown_s: float = 15.0, rounds: int = 3) -> Section:
    section = Section("loop_timing", "Loop timing (1000 Hz, real time) and CPU cost")
    started = time.perf_counter()
    fifo_ok = can_fifo()
    policies: list[tuple[str, int | None]] = [("SCHED_OTHER", None)]
    if fifo_ok:
        policies.append((f"SCHED_FIFO {FIFO_PRIORITY}", FIFO_PRIORITY))
    rows = []
    hist_rows: dict[str, list[Any]] = {}
    for policy, fifo in policies:
        for busy in (0, 1):
            load = "other core busy" if busy else "idle"
            label = f"{load}, {policy}"
            with busy_processes(busy, limit_s=seconds + 120):
                ref = run_worker(seconds / 4, fifo, "--reference")
                result = run_worker(seconds, fifo)
            s = result["lateness_ms"]
            background = _background(result, busy)
            section.data[label] = {
                **{k: v for k, v in result.items() if k != "lateness_ms"},
                "lateness_ms": scaled(s, 1.0, 6),
                "background_pct": background,
                "reference": {
                    "lateness_ms": scaled(ref["lateness_ms"], 1.0, 6),
                    "cpu_percent": ref["cpu_percent"],
                },
            }
            bg = "" if background is None else f"{background:.0f} %"
            steal = result.get("steal_pct")
            bg += "" if steal is None else f" (steal {steal:.1f} %)"
            rows.append(
                [
                    *dist_row(label, s, 1000.0, 0),
                    round(longest_gap(result), 2),
                    round(result["rate_hz"], 1),
                    result["rebases"],
                    ", ".join(result["trips"]) or "none",
                    bg,
                ]
            )
            rows.append(
                [
                    *dist_row(
                        f"  reference: bare sleep loop, {load}, {policy}",
                        ref["lateness_ms"],
                        1000.0,
                        0,
                    ),
                    round(longest_gap(ref), 2),
                    round(ref["rate_hz"], 1),
                    ref["rebases"],
                    "",
                    "",
                ]
            )
            for bucket, count in result["histogram_us"]:
                hist_rows.setdefault(bucket, [bucket]).append(count)
            section.metric(
                f"lateness_p999_ms_{'loaded' if busy else 'idle'}_{policy.split()[0].lower()}",
                f"tick lateness p99.9, {label}",
                s["p99.9"],
                "ms",
                LATE_LOADED if busy else LATE_IDLE,
                note=f"bare sleep loop on the same machine: {ref['lateness_ms']['p99.9']:.3f} ms",
            )
            if busy == 0 and fifo is None:
                cpu = result
    table, daemon_cpu = _cpu_breakdown(breakdown_s, rounds)
    cpu_median = statistics.median([*daemon_cpu, cpu["cpu_percent"]])
    section.metric(
        "cpu_percent_1000hz",
        "CPU at 1000 Hz, whole daemon process, idle, SCHED_OTHER (median of runs)",
        cpu_median,
        "% of one core",
        CPU_TARGET,
        note="runs: "
        + ", ".join(f"{x:.2f}" for x in [cpu["cpu_percent"], *daemon_cpu])
        + f" %; in the {seconds:g} s run the loop thread alone used "
        f"{100 * cpu['cpu_loop_thread_s'] / cpu['seconds']:.2f} %",
    )
    section.metric(
        "cpu_s_per_min_1000hz",
        "CPU seconds per minute of supervision at 1000 Hz",
        cpu_median * 60.0 / 100.0,
        "s/min",
    )
    section.tables.append(
        Table(
            "Tick lateness (µs)",
            [
                *DIST_COLUMNS,
                "longest gap ms",
                "ticks/s",
                "re-based",
                "trips",
                "other processes' CPU",
            ],
            rows,
        )
    )
    section.tables.append(
        Table(
            "Tick lateness histogram (ticks per bucket, µs)",
            ["bucket", *(r[0] for r in rows if not r[0].startswith(" "))],
            list(hist_rows.values()),
        )
    )
    section.tables.append(table)
    section.notes += [
        f"{seconds:g} s per run; config default (1000 Hz, max_loop_gap_ms 20); region "
        f"{REGION} armed, gun at {GUN_PPM:g} ppm and {GUN_FORCE_N:g} N (each tick computes "
        "rate, force, contact, dose). gc.freeze() after start-up, as `gunguard run` does.",
        "'other core busy' = one busy-loop process (this machine has "
        f"{os.cpu_count()} CPUs), bounded in time and killed after the run. 'other "
        "processes' CPU' is what the rest of the machine used meanwhile (from /proc/stat, "
        "minus the worker and the busy loop): an 'idle' run is only as idle as that.",
        f"SCHED_FIFO {FIFO_PRIORITY} is how systemd/gunguard.service runs the daemon "
        "(CPUSchedulingPolicy=fifo); SCHED_OTHER is `gunguard run` by hand and `make demo`."
        + ("" if fifo_ok else " SCHED_FIFO was not permitted here, so those runs are missing."),
        "The reference rows are a bare Python time.sleep loop on the same absolute "
        f"schedule ({seconds / 4:g} s, same load and policy): the floor this machine sets "
        "before any gunguard code runs.",
        "CPU is the worker process's CPU time over the run (CLOCK_PROCESS_CPUTIME_ID), so "
        "it includes the watchdog thread and the tach edge callbacks (73 edges/s at 2200 "
        "ppm). The target is judged on the median of the idle SCHED_OTHER run and the "
        "breakdown's whole-daemon runs: load from other processes only adds to it.",
        "'longest gap' is between the `now`s of consecutive ticks, what the supervisor's "
        "own loop_overrun check compares with max_loop_gap_ms (20 ms). 'steal' is time the "
        "hypervisor gave this VM's CPUs to others (/proc/stat): a stall it causes is the "
        "machine's, not gunguard's.",
    ]
    section.seconds = time.perf_counter() - started
    return section


def _cpu_breakdown(seconds: float, rounds: int) -> tuple[Table, list[float]]:
    """Where the CPU goes, from a bare sleep loop up to the whole daemon (idle, SCHED_OTHER).

    The steps are interleaved over ``rounds`` rounds, so a burst of load from elsewhere
    hits one sample of every step rather than all samples of one; the medians are shown.
    Returns the table and the whole daemon's samples (% of one core).
    """
    steps = [
        ("bare time.sleep loop at 1000 Hz (no gunguard)", ("--reference",)),
        ("RealtimeLoop + Supervisor.tick, no gun", ("--no-watchdog", "--no-gun")),
        ("+ LoopWatchdog thread (wakes every max_loop_gap/4 = 5 ms)", ("--no-gun",)),
        ("+ gun percussing: 73 tach edges/s, contact, dose", ()),
        ("the same at loop.rate_hz 500 (experiment)", ("--rate-hz", "500")),
    ]
    samples: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in steps}
    for _ in range(rounds):
        for label, flags in steps:
            samples[label].append(run_worker(seconds, None, *flags))
    rows = []
    for label, _ in steps:
        runs = samples[label]

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(r[key] / r["seconds"] for r in runs)

        rows.append(
            [
                label,
                round(statistics.median(r["cpu_percent"] for r in runs), 2),
                round(min(r["cpu_percent"] for r in runs), 2),
                round(max(r["cpu_percent"] for r in runs), 2),
                round(1000 * med("cpu_user_s"), 2),
                round(1000 * med("cpu_system_s"), 2),
                round(med("voluntary_switches")),
            ]
        )
    table = Table(
        f"CPU breakdown, idle, SCHED_OTHER ({rounds} interleaved rounds of {seconds:g} s)",
        [
            "",
            "% of one core (median)",
            "min",
            "max",
            "user ms/s",
            "system ms/s",
            "context switches/s",
        ],
        rows,
    )
    return table, [r["cpu_percent"] for r in samples[steps[3][0]]]


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
