"""What every benchmark shares: statistics, results with targets, the machine's description.

A benchmark returns a :class:`Section`: named :class:`Metric` values (some with a
target from issue 7), distribution tables and notes. :mod:`bench.report` turns the
sections into ``latest.json`` and ``latest.md``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = Path(__file__).resolve().parent / "scenarios"

MET, MISSED, INFO, PENDING, FAILED = "met", "MISSED", "-", "not yet measurable", "error"


@dataclass(frozen=True)
class Target:
    """``op`` is ``<=`` or ``>=``; ``value`` is in the metric's unit."""

    op: str
    value: float

    def met(self, measured: float) -> bool:
        return measured <= self.value if self.op == "<=" else measured >= self.value

    def text(self, unit: str) -> str:
        return f"{self.op} {self.value:g} {unit}".rstrip()


@dataclass
class Metric:
    key: str
    label: str
    value: float | None
    unit: str
    target: Target | None = None
    note: str = ""
    pending: str | None = None  # "not yet measurable: needs X"

    @property
    def status(self) -> str:
        if self.pending is not None:
            return PENDING
        if self.value is None:
            return FAILED
        if self.target is None:
            return INFO
        return MET if self.target.met(self.value) else MISSED

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "status": self.status,
        }
        if self.target is not None:
            out["target"] = {"op": self.target.op, "value": self.target.value}
        if self.note:
            out["note"] = self.note
        if self.pending is not None:
            out["pending"] = self.pending
        return out


@dataclass
class Table:
    """A small table for the report: a title, column names, rows of cells."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows}


@dataclass
class Section:
    name: str
    title: str
    metrics: list[Metric] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def metric(self, *args: Any, **kwargs: Any) -> Metric:
        m = Metric(*args, **kwargs)
        self.metrics.append(m)
        return m

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "wall_seconds": round(self.seconds, 2),
            "metrics": [m.as_dict() for m in self.metrics],
            "tables": [t.as_dict() for t in self.tables],
            "notes": self.notes,
            "data": self.data,
        }


def pending(
    name: str, title: str, key: str, label: str, unit: str, target: Target | None, needs: str
) -> Section:
    """A section for a benchmark whose subject has not landed yet."""
    section = Section(name, title)
    section.metric(key, label, None, unit, target, pending=f"not yet measurable: needs {needs}")
    return section


# -- daemon processes ------------------------------------------------------------------------
def private_config(name: str, directory: str | Path) -> Path:
    """A copy of shipped config ``name`` whose treatment history lives in ``directory``.

    Every daemon the benchmarks start uses one: ``gunguard run`` records into
    ``storage.path`` (default ``/var/lib/gunguard/history.db``, the real history), and a
    benchmark must neither write there nor be refused by what is there.
    """
    import yaml

    from gunguard.config import loader as configfile

    data = configfile.load(name).model_dump(mode="json")
    data["storage"] = {"path": str(Path(directory) / "history.db")}
    path = Path(directory) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    configfile.load(str(path))  # still valid
    return path


# -- statistics ----------------------------------------------------------------------------
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (p in 0..100)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summarize(values: Iterable[float]) -> dict[str, float]:
    """n, min, mean, p50, p90, p99, p99.9, max of ``values`` (same unit in, same out)."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return {"n": 0}
    out = {"n": n, "min": ordered[0], "mean": sum(ordered) / n}
    for p in PERCENTILES:
        out[f"p{p:g}"] = percentile(ordered, p)
    out["max"] = ordered[-1]
    return out


def histogram(values: Iterable[float], edges: Sequence[float]) -> list[list[Any]]:
    """Counts per bucket: ``[[upper_edge, count], ...]`` plus an overflow bucket."""
    counts = [0] * (len(edges) + 1)
    for v in values:
        for i, edge in enumerate(edges):
            if v <= edge:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
    rows: list[list[Any]] = [[f"<= {e:g}", c] for e, c in zip(edges, counts, strict=False)]
    rows.append([f"> {edges[-1]:g}", counts[-1]])
    return rows


def dist_row(label: str, s: dict[str, float], scale: float = 1.0, digits: int = 3) -> list[Any]:
    """A table row ``label, n, p50, p90, p99, p99.9, max`` with values scaled."""
    if not s.get("n"):
        return [label, 0, "", "", "", "", ""]
    return [
        label,
        int(s["n"]),
        *(round(s[k] * scale, digits) for k in ("p50", "p90", "p99", "p99.9", "max")),
    ]


DIST_COLUMNS = ["", "n", "p50", "p90", "p99", "p99.9", "max"]


def scaled(s: dict[str, float], scale: float, digits: int = 4) -> dict[str, float]:
    return {k: (v if k == "n" else round(v * scale, digits)) for k, v in s.items()}


# -- time ------------------------------------------------------------------------------------
def sleep_until(deadline_ns: int) -> None:
    """Sleep to a ``perf_counter_ns`` deadline (the test driver's timing; not the loop's)."""
    delay = deadline_ns - time.perf_counter_ns()
    if delay > 0:
        time.sleep(delay / 1e9)


# -- background load -------------------------------------------------------------------------
BUSY_CODE = (
    "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"
)


@contextlib.contextmanager
def busy_processes(count: int, limit_s: float) -> Iterator[list[int]]:
    """``count`` busy-loop processes, each ending by itself after ``limit_s`` and killed on exit."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUSY_CODE.format(limit=limit_s)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        time.sleep(0.2)  # let them reach their loop
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


# -- the machine -----------------------------------------------------------------------------
def proc_stat() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat (0, 0 where there is none)."""
    busy, total, _ = proc_stat_steal()
    return busy, total


def proc_stat_steal() -> tuple[int, int, int]:
    """(busy, total, steal) jiffies of all CPUs; steal is time the hypervisor took."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0, 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    steal = fields[7] if len(fields) > 7 else 0
    return sum(fields) - idle, sum(fields), steal


def background_cpu(seconds: float = 2.0) -> float | None:
    """What the machine is busy with before we start, in % of one CPU."""
    busy0, total0 = proc_stat()
    time.sleep(seconds)
    busy1, total1 = proc_stat()
    if total1 <= total0:
        return None
    return 100.0 * (os.cpu_count() or 1) * (busy1 - busy0) / (total1 - total0)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware"):
            return value.strip()
    return platform.processor() or platform.machine()


def _git() -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": run("rev-parse", "--short=12", "HEAD"), "dirty": bool(status)}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Where the numbers were measured: they mean nothing without it."""
    mem_kb = None
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    try:
        virt = subprocess.run(
            ["systemd-detect-virt"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        virt = None
    return {
        "hostname": platform.node(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "arch": platform.machine(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "virtualisation": virt or None,
        "memory_mib": round(mem_kb / 1024) if mem_kb else None,
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "busy_before_start_pct": background_cpu(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "gpiozero": _version("gpiozero"),
        "gunguard": _version("gunguard"),
        "git": _git(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
