"""Store: the SQLite ledger's writes per second and their effect on the loop's lateness.

Runs in the loop-timing worker (:mod:`bench.looptiming`) with the supervisor recording
into a :class:`gunguard.store.ledger.Ledger` in a temporary directory (never the real
``/var/lib/gunguard``), in two modes:

* ``normal``: the ledger as the daemon runs it (its writer thread commits every
  ``FLUSH_INTERVAL_S`` while something changed, telemetry at ``TELEMETRY_HZ``);
* ``stress``: in addition a thread commits back to back (``Ledger.flush()``, each a
  ``synchronous=FULL`` WAL commit with its fsync), the most the store can be made to
  write, to see what that does to the loop.
"""

from __future__ import annotations

import importlib.util
import time

from bench.common import DIST_COLUMNS, Section, Table, dist_row, pending, scaled
from bench.harnesses import MODES


def available() -> bool:
    return importlib.util.find_spec("gunguard.store.ledger") is not None


def ledger_section(seconds: float) -> Section:
    title = "Store: ledger writes and the loop"
    if not available():
        return pending(
            "store",
            title,
            "ledger_commits_per_s",
            "ledger commits per second",
            "1/s",
            None,
            "the SQLite ledger (controller/ledger.py)",
        )
    from bench.looptiming import REGION, longest_gap, run_worker

    section = Section("store", title)
    started = time.perf_counter()
    baseline = run_worker(seconds, None)
    runs = {mode: run_worker(seconds, None, "--ledger", mode) for mode in MODES}
    rows = [dist_row("memory book (no store)", baseline["lateness_ms"], 1000.0, 0)]
    rows[0] += [
        round(longest_gap(baseline), 2),
        "",
        "",
        ", ".join(baseline["trips"]) or "none",
    ]
    for mode, result in runs.items():
        led = result["ledger"]
        rows.append(
            [
                *dist_row(f"ledger, {mode}", result["lateness_ms"], 1000.0, 0),
                round(longest_gap(result), 2),
                round(led["commits_per_s"], 1),
                round(led["rows_per_s"], 1),
                ", ".join(result["trips"]) or "none",
            ]
        )
        section.data[mode] = {
            **{k: v for k, v in result.items() if k != "lateness_ms"},
            "lateness_ms": scaled(result["lateness_ms"], 1.0, 6),
        }
    section.data["memory_book"] = {"lateness_ms": scaled(baseline["lateness_ms"], 1.0, 6)}
    normal = runs["normal"]["ledger"]
    stress = runs["stress"]["ledger"]
    section.metric(
        "ledger_commits_per_s",
        "ledger commits per second as the daemon runs it (percussing)",
        normal["commits_per_s"],
        "1/s",
        note=f"{normal['rows_per_s']:.1f} rows/s",
    )
    section.metric(
        "ledger_commits_per_s_max",
        "ledger commits per second, back to back (synchronous=FULL, fsync each)",
        stress["commits_per_s"],
        "1/s",
        note="commit p50 {:.2f} ms, p99 {:.2f} ms".format(
            stress["commit_ms"]["p50"], stress["commit_ms"]["p99"]
        )
        if "commit_ms" in stress
        else "",
    )
    section.metric(
        "lateness_p999_ms_ledger_normal",
        "tick lateness p99.9 with the ledger (normal), idle, SCHED_OTHER",
        runs["normal"]["lateness_ms"]["p99.9"],
        "ms",
        note=f"memory book: {baseline['lateness_ms']['p99.9']:.3f} ms in the same series",
    )
    section.metric(
        "lateness_p999_ms_ledger_stress",
        "tick lateness p99.9 with the ledger committing back to back",
        runs["stress"]["lateness_ms"]["p99.9"],
        "ms",
    )
    section.tables.append(
        Table(
            "Tick lateness with the store (µs), idle, SCHED_OTHER",
            [*DIST_COLUMNS, "longest gap ms", "commits/s", "rows/s", "trips"],
            rows,
        )
    )
    if "commit_ms" in stress:
        section.tables.append(
            Table(
                "Commit time, back to back (µs)",
                DIST_COLUMNS,
                [dist_row("Ledger.flush()", stress["commit_ms"], 1000.0, 0)],
            )
        )
    section.notes += [
        f"{seconds:g} s per run, the loop-timing worker (region {REGION} armed, gun "
        "percussing, 1000 Hz) recording into a Ledger in a temporary directory on this "
        "machine's disk; the memory-book run is the same worker with the in-memory book.",
        "The loop thread only adds contact seconds in memory (Ledger.add); commits "
        "happen on the ledger's writer thread (and, in 'stress', on one more thread). "
        "sqlite3 releases the GIL while SQLite works, so their cost to the loop is the "
        "Python around each commit and the fsync's disk traffic.",
        "fsync cost is the disk's: this machine's virtual disk acknowledges a flush in "
        "about 0.1 ms; a Raspberry Pi's SD card takes milliseconds to tens of "
        "milliseconds, so measure the back-to-back rate on the target.",
    ]
    section.seconds = time.perf_counter() - started
    return section
