"""install.sh / uninstall.sh into a temporary root, with the system tools stubbed.

The scripts run for real (bash, install, rm) against DESTDIR; groupadd, useradd,
usermod, userdel, groupdel, getent, systemctl and the Python interpreter are
stubs on PATH that record their arguments and keep a tiny user/group database,
so the exact system steps can be asserted without touching the machine. The
source tree is a copy holding only what the scripts read, so the test does not
depend on the rest of the checkout.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_YAML = "# default gunguard configuration (test copy)\nhardware: {}\n"

STUB = r"""#!/usr/bin/env bash
# Records the call, then imitates the tool on a tiny database in $STUB_STATE.
echo "$(basename "$0") $*" >>"$STUB_LOG"
case "$(basename "$0")" in
getent)
	grep -qx "$1:$2" "$STUB_STATE/db" 2>/dev/null ;;
groupadd)
	echo "group:${*: -1}" >>"$STUB_STATE/db" ;;
useradd)
	echo "passwd:${*: -1}" >>"$STUB_STATE/db"
	echo "group:${*: -1}" >>"$STUB_STATE/db" ;;
userdel)
	sed -i "/^passwd:$1\$/d;/^group:$1\$/d" "$STUB_STATE/db" ;;
systemctl)
	case "$1" in
	is-active) exit 3 ;;
	cat) [ -e "$STUB_STATE/unit-loaded" ] ;;
	enable) touch "$STUB_STATE/unit-loaded" ;;
	esac ;;
python3)
	# `python3 -c CHECK` passes; `python3 -m venv DIR` makes a venv whose python
	# is this stub again (so `pip install` is recorded, not run).
	if [ "$1" = -m ] && [ "$2" = venv ]; then
		mkdir -p "$3/bin" && ln -s "$0" "$3/bin/python"
	fi ;;
esac
"""

TOOLS = ("getent", "groupadd", "useradd", "usermod", "userdel", "groupdel", "systemctl", "python3")


class Sandbox:
    def __init__(self, tmp: Path) -> None:
        self.src = tmp / "src"
        self.dest = tmp / "root"
        self.state = tmp / "state"
        self.log = tmp / "calls.log"
        self.bin = tmp / "bin"
        for d in (self.src / "systemd", self.src / "config", self.dest, self.state, self.bin):
            d.mkdir(parents=True)
        for name in ("install.sh", "uninstall.sh", "gunguard.service"):
            shutil.copy2(REPO / "systemd" / name, self.src / "systemd" / name)
        (self.src / "pyproject.toml").write_text("[project]\nname = 'gunguard'\n")
        (self.src / "config" / "default.yaml").write_text(DEFAULT_YAML)
        for tool in TOOLS:
            path = self.bin / tool
            path.write_text(STUB)
            path.chmod(0o755)
        self.log.touch()

    def has(self, *entries: str) -> None:
        with (self.state / "db").open("a") as db:
            db.writelines(f"{e}\n" for e in entries)

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        full_env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "DESTDIR": str(self.dest),
            "SYSTEM_STEPS": "yes",
            "PYTHON": "python3",
            "STUB_LOG": str(self.log),
            "STUB_STATE": str(self.state),
            **env,
        }
        return subprocess.run(
            ["bash", str(self.src / "systemd" / script), *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=30,
        )

    def calls(self) -> list[str]:
        lines = self.log.read_text().splitlines()
        self.log.write_text("")
        # The interpreter checks (`python3 -c ...`) are not system changes.
        return [c for c in lines if not c.startswith("python3 -c")]

    def tree(self) -> list[str]:
        return sorted(
            str(p.relative_to(self.dest)) + ("/" if p.is_dir() and not p.is_symlink() else "")
            for p in self.dest.rglob("*")
        )


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def test_fresh_install(box: Sandbox) -> None:
    box.has("group:gpio", "group:dialout")  # a Pi without the spi group yet
    result = box.run("install.sh")
    assert result.returncode == 0, result.stderr
    venv = box.dest / "opt/gunguard/venv"
    assert box.calls() == [
        "getent group gpio",
        "getent group spi",
        "groupadd --system spi",
        "getent group dialout",
        "getent passwd gunguard",
        "useradd --system --user-group --home-dir /var/lib/gunguard --no-create-home "
        "--shell /usr/sbin/nologin --comment gunguard safety supervisor gunguard",
        "usermod --append --groups gpio,spi,dialout gunguard",
        f"python3 -m venv {venv}",
        # The venv's own interpreter (the stub's symlink is named "python").
        f"python -m pip install --quiet --no-cache-dir --disable-pip-version-check {box.src}[pi]",
        "systemctl daemon-reload",
        "systemctl enable gunguard.service",
        "systemctl is-active --quiet gunguard.service",
    ]
    conf = box.dest / "etc/gunguard/gunguard.yaml"
    unit = box.dest / "etc/systemd/system/gunguard.service"
    assert conf.read_text() == DEFAULT_YAML
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert unit.read_bytes() == (REPO / "systemd/gunguard.service").read_bytes()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert box.tree() == [
        "etc/",
        "etc/gunguard/",
        "etc/gunguard/gunguard.yaml",
        "etc/systemd/",
        "etc/systemd/system/",
        "etc/systemd/system/gunguard.service",
        "opt/",
        "opt/gunguard/",
        "opt/gunguard/venv/",
        "opt/gunguard/venv/bin/",
        "opt/gunguard/venv/bin/python",
    ]


def test_rerun_keeps_config_user_and_venv(box: Sandbox) -> None:
    box.has("group:gpio", "group:spi", "group:dialout")
    assert box.run("install.sh").returncode == 0
    conf = box.dest / "etc/gunguard/gunguard.yaml"
    conf.write_text("# edited on the device\n")
    box.calls()
    result = box.run("install.sh")
    assert result.returncode == 0, result.stderr
    assert conf.read_text() == "# edited on the device\n"
    assert "keeping existing" in result.stdout
    calls = box.calls()
    assert not [c for c in calls if c.startswith(("useradd", "groupadd", "python3 -m venv"))]
    assert "usermod --append --groups gpio,spi,dialout gunguard" in calls
    assert any(c.startswith("python -m pip install") for c in calls)  # code refreshed


def test_dry_run_changes_nothing(box: Sandbox) -> None:
    result = box.run("install.sh", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert box.tree() == []
    assert "+ useradd --system --user-group" in result.stdout
    assert "+ systemctl enable gunguard.service" in result.stdout
    assert f"+ install -m 0640 {box.src}/config/default.yaml" in result.stdout
    assert [c for c in box.calls() if not c.startswith("getent")] == []


def test_destdir_alone_skips_system_steps(box: Sandbox) -> None:
    result = box.run("install.sh", SYSTEM_STEPS="auto")
    assert result.returncode == 0, result.stderr
    calls = box.calls()
    assert not [c for c in calls if c.split()[0] in {"useradd", "groupadd", "usermod", "systemctl"}]
    assert (box.dest / "etc/systemd/system/gunguard.service").exists()


def test_missing_default_config_fails_before_any_change(box: Sandbox) -> None:
    (box.src / "config" / "default.yaml").unlink()
    result = box.run("install.sh")
    assert result.returncode == 1
    assert "missing" in result.stderr and "default.yaml" in result.stderr
    assert box.tree() == []
    assert box.calls() == []


def test_uninstall_keeps_history_and_config(box: Sandbox) -> None:
    box.has("group:gpio", "group:spi", "group:dialout")
    assert box.run("install.sh").returncode == 0
    (box.dest / "var/lib/gunguard").mkdir(parents=True)
    (box.dest / "var/lib/gunguard/history.db").write_text("sessions")
    box.calls()
    result = box.run("uninstall.sh")
    assert result.returncode == 0, result.stderr
    assert box.calls() == [
        "systemctl cat gunguard.service",
        "systemctl disable --now gunguard.service",
        "systemctl daemon-reload",
        "systemctl reset-failed gunguard.service",
        "getent passwd gunguard",
        "userdel gunguard",
        "getent group gunguard",
    ]
    assert box.tree() == [
        "etc/",
        "etc/gunguard/",
        "etc/gunguard/gunguard.yaml",
        "etc/systemd/",
        "etc/systemd/system/",
        "opt/",
        "var/",
        "var/lib/",
        "var/lib/gunguard/",
        "var/lib/gunguard/history.db",
    ]
    # And again: nothing left to remove, still succeeds.
    again = box.run("uninstall.sh")
    assert again.returncode == 0, again.stderr


def test_scripts_are_executable() -> None:
    for name in ("install.sh", "uninstall.sh"):
        assert os.access(REPO / "systemd" / name, os.X_OK), name
