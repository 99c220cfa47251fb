"""The wheel carries the shipped configs, and an installed gunguard finds them by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from controller import configfile

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from this checkout (hatchling from the venv: no network)."""
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("gunguard-*.whl")
    return path


def test_the_wheel_holds_the_shipped_configs(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        shipped = sorted(n for n in names if n.startswith("controller/shipped_configs/"))
        assert shipped == [
            f"controller/shipped_configs/{p.name}" for p in sorted((REPO / "config").glob("*.yaml"))
        ]
        for name in shipped:
            assert zf.read(name) == (REPO / "config" / Path(name).name).read_bytes()
        assert "controller/supervisor.py" in names
        assert "hardware/motor.py" in names
        assert not any(n.startswith(("config/", "tests/")) for n in names)
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "gunguard = controller.cli:main" in entry_points
    assert "gunguard = controller.pytest_plugin" in entry_points


def test_an_installed_copy_finds_its_configs_by_name(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    probe = (
        "import json, controller, controller.configfile as c\n"
        "cfg = c.load('achilles-tendinopathy')\n"
        "print(json.dumps({'module': controller.__file__, 'dir': str(c.shipped_dir()),\n"
        "  'names': c.shipped_names(), 'resolved': str(c.resolve('default')),\n"
        "  'allowed': sorted(n for n, r in cfg.regions.items() if r.allowed)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the checkout: its controller/ must not shadow the wheel's
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["module"] == str(site / "controller" / "__init__.py")
    assert found["dir"] == str(site / "controller" / "shipped_configs")
    assert found["names"] == ["achilles-tendinopathy", "default"]
    assert found["resolved"] == str(site / "controller" / "shipped_configs" / "default.yaml")
    assert found["allowed"] == ["calf-left", "calf-right"]


def test_a_checkout_uses_its_config_directory():
    assert not (REPO / "controller" / "shipped_configs").exists()
    assert configfile.shipped_dir() == REPO / "config"
