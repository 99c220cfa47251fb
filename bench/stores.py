"""Treatment stores to break: a real store, corrupted copies, private mounts.

Shared by the fault campaign (bench/faults.py) and the ledger's test suite.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gunguard.config.schema import GunguardConfig
from gunguard.sim.bench import Bench
from gunguard.sim.simulate import close_book, ledger_factory

REPO = Path(__file__).resolve().parents[1]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted(folder.iterdir()) if p.is_file()}


def corrupt(path: Path) -> None:
    """Garble a b-tree page in the middle, keeping the header: integrity_check fails."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) >= 4 * page
    data[2 * page + 8 : 2 * page + 300] = bytes(range(256)) + bytes(36)
    path.write_bytes(bytes(data))


def in_private_mounts(setup: str, code: str) -> dict:
    """Run ``code`` (prints one JSON line) after shell ``setup`` in a private mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    flags = "-m" if os.geteuid() == 0 else "-rm"
    probe = subprocess.run(["unshare", flags, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace: {probe.stderr.decode().strip()}")
    script = f"{setup}\nexec {sys.executable} -c {_sh_quote(textwrap.dedent(code))}"
    result = subprocess.run(
        ["unshare", flags, "sh", "-ec", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def make_store(path: Path, seconds: float = 40.0, region: str = "calf-left") -> None:
    """A real store with one treatment, a trip and telemetry, closed cleanly."""
    cfg = GunguardConfig()
    bench = Bench(cfg, book_factory=ledger_factory(cfg, path))
    assert bench.select(region) is None
    bench.gun(ppm=2200, force_n=30)
    bench.run(seconds)
    bench.gun(force_n=120)
    bench.run(1.0)
    bench.close()
    close_book(bench)
