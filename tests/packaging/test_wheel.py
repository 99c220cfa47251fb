"""The wheel carries the shipped configs, and an installed gunguard finds them by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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


def test_the_wheel_holds_one_package_with_the_shipped_configs(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        assert top == {"gunguard"}
        shipped = sorted(n for n in names if n.startswith("gunguard/configs/"))
        assert shipped == [
            f"gunguard/configs/{p.name}" for p in sorted((REPO / "config").glob("*.yaml"))
        ]
        for name in shipped:
            assert zf.read(name) == (REPO / "config" / Path(name).name).read_bytes()
        plans = sorted(n for n in names if n.startswith("gunguard/plans/"))
        files = sorted((REPO / "plans").glob("*.yaml"))
        assert plans == [f"gunguard/plans/{p.name}" for p in files]
        assert plans == ["gunguard/plans/achilles-calf-4-weeks.yaml"]
        examples = sorted(n for n in names if n.startswith("gunguard/examples/"))
        assert examples == [
            f"gunguard/examples/{p.relative_to(REPO / 'examples')}"
            for p in sorted((REPO / "examples").rglob("*.yaml"))
        ]
        assert "gunguard/core/supervisor.py" in names
        assert "gunguard/hardware/motor.py" in names
        assert "gunguard/py.typed" in names
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "gunguard = gunguard.cli:main" in entry_points
    assert "gunguard = gunguard.pytest_plugin" in entry_points


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the wheel, as a user's would.

    Its dependencies come from this environment through a ``.pth`` file (no network);
    its own site-packages, first on the path, holds exactly what the wheel installs.
    """
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
    (site / "zz-dependencies.pth").write_text(f"{deps}\n")
    script = venv / "bin" / "pytest"  # what pip writes for pytest's console script
    script.write_text(
        f"#!{venv}/bin/python\nimport sys\nfrom pytest import console_main\n"
        "sys.exit(console_main())\n"
    )
    script.chmod(0o755)
    return venv


def run_probe(installed: Path, probe: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``probe`` run by the installed copy's Python, from ``cwd``; it must succeed."""
    done = subprocess.run(
        [str(installed / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_an_installed_copy_finds_its_configs_by_name(installed, tmp_path):
    probe = (
        "import json, gunguard, gunguard.config.loader as c\n"
        "cfg = c.load('achilles-tendinopathy')\n"
        "print(json.dumps({'module': gunguard.__file__, 'dir': str(c.shipped_dir()),\n"
        "  'names': c.shipped_names(), 'resolved': str(c.resolve('default')),\n"
        "  'allowed': sorted(n for n, r in cfg.regions.items() if r.allowed)}))\n"
    )
    done = run_probe(installed, probe, tmp_path)
    found = json.loads(done.stdout)
    (site,) = installed.glob("lib/python*/site-packages")
    assert found["module"] == str(site / "gunguard" / "__init__.py")
    assert found["dir"] == str(site / "gunguard" / "configs")
    assert found["names"] == ["achilles-tendinopathy", "default"]
    assert found["resolved"] == str(site / "gunguard" / "configs" / "default.yaml")
    assert found["allowed"] == ["calf-left", "calf-right"]


def test_an_installed_copy_simulates_its_example_scenarios_by_name(installed, tmp_path):
    """``pip install gunguard`` then ``gunguard simulate demo-session``, from anywhere."""
    probe = (
        "import sys\nfrom gunguard.cli import main\nsys.exit(main(['simulate', 'demo-session']))\n"
    )
    done = run_probe(installed, probe, tmp_path)
    assert "  trips: overspeed, overforce" in done.stdout
    assert "expect trip: overforce between 17 and 17.5 s: ok" in done.stderr
    probe = "from gunguard.sim.scenario import example_names\nprint(example_names())\n"
    names = run_probe(installed, probe, tmp_path).stdout
    assert names.strip() == "['achilles-calf-4-weeks', 'demo-live', 'demo-session']"


USER_PROJECT = {
    "controller/__init__.py": "WHO = 'the user'\n",
    "hardware.py": "PINS = {'led': 'GPIO5'}\n",
    "test_mine.py": """
import controller
import hardware


def test_my_own_packages_are_mine():
    assert controller.WHO == "the user"
    assert hardware.PINS == {"led": "GPIO5"}


def test_the_bench_fixture(gunguard_bench):
    bench = gunguard_bench("achilles-tendinopathy")
    assert bench.select("calf-left") is None
    bench.gun(ppm=2600, force_n=30)
    bench.run(1.0)
    assert bench.trips() == ["overspeed"]
""",
}


@pytest.mark.parametrize("how", ["pytest", "python -m pytest"])
def test_a_user_project_with_its_own_controller_and_hardware(installed, tmp_path, how):
    """Installing gunguard must not take the names of a user's own modules."""
    for name, text in USER_PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    command = [str(installed / "bin" / "pytest")]
    if how == "python -m pytest":
        command = [str(installed / "bin" / "python"), "-m", "pytest"]
    done = subprocess.run(
        [*command, "-q", "-p", "no:cacheprovider", "test_mine.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_loading_the_plugin_imports_nothing_heavy(installed, tmp_path):
    probe = (
        "import sys, gunguard.pytest_plugin\n"
        "print(sorted(m for m in ('gpiozero', 'pydantic', 'serial', 'yaml', 'gunguard.sim',"
        " 'gunguard.core') if m in sys.modules))\n"
    )
    done = run_probe(installed, probe, tmp_path)
    assert done.stdout.strip() == "[]"
