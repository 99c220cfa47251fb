"""systemd/gunguard.service: systemd's own checks, plus the settings the design rests on.

``systemd-analyze verify`` and ``security --offline=true`` read a unit file
without a running systemd, as in CI (root in a container). Two facts shape the
verify test, both checked on systemd 252 (Bookworm's version):

* verify fails when an ``Exec*=`` binary does not exist, and
  /opt/gunguard/venv/bin/gunguard exists only on an installed Pi. The test
  copies the unit to a temporary directory with that one path rewritten to a
  stub executable; everything else is verified as shipped.
* verify exits 0 on unknown keys and unparsable values (it only prints
  "..., ignoring."), so any output at all fails the test.

verify does not resolve ``User=`` or ``SupplementaryGroups=`` (systemd looks
them up when the service starts), so the missing gunguard user and gpio/spi
groups on a CI machine neither warn nor fail; install.sh creates them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "gunguard.service"
INSTALLED_BIN = "/opt/gunguard/venv/bin/gunguard"
CONFIG = "/etc/gunguard/gunguard.yaml"
MAX_EXPOSURE = 1.5

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (package systemd)"
)


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    env = {
        **os.environ,
        # An inherited debug level would print pages; warnings must still show.
        "SYSTEMD_LOG_LEVEL": "warning",
        "SYSTEMD_LOG_COLOR": "0",
        "SYSTEMD_PAGER": "",
    }
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args], capture_output=True, text=True, env=env, timeout=60
    )


def unit_settings() -> list[tuple[str, str, str]]:
    """(section, key, value) in file order; repeated keys are kept (DeviceAllow=)."""
    out: list[tuple[str, str, str]] = []
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(key: str, section: str = "Service") -> list[str]:
    return [v for s, k, v in unit_settings() if s == section and k == key]


def one(key: str, section: str = "Service") -> str:
    found = values(key, section)
    assert len(found) == 1, f"{key}= appears {len(found)} times"
    return found[0]


def verifiable_copy(tmp_path: Path, extra: str = "") -> Path:
    stub = tmp_path / "bin" / "gunguard"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = UNIT.read_text()
    assert text.count(INSTALLED_BIN) == 2  # ExecStart= and ExecStopPost=
    text = text.replace(INSTALLED_BIN, str(stub))
    if extra:
        text = text.replace("[Service]\n", f"[Service]\n{extra}\n", 1)
    copy = tmp_path / "gunguard.service"
    copy.write_text(text)
    return copy


@needs_analyze
def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    result = analyze("verify", "--man=no", "--generators=no", str(verifiable_copy(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == ""


@needs_analyze
def test_verify_harness_catches_a_bad_setting(tmp_path: Path) -> None:
    """Guard against a vacuous pass: a bad key must produce output."""
    bad = verifiable_copy(tmp_path, extra="WatchdogSec=2 fortnights")
    result = analyze("verify", "--man=no", "--generators=no", str(bad))
    assert "WatchdogSec" in result.stderr or "sec value" in result.stderr, result.stderr


@needs_analyze
def test_security_exposure_at_most_1_5() -> None:
    result = analyze(
        "security", "--offline=true", f"--threshold={int(MAX_EXPOSURE * 10)}", str(UNIT)
    )
    match = re.search(r"Overall exposure level for gunguard\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout  # --threshold agrees


def test_commands_and_notify_contract() -> None:
    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("ExecStart") == f"{INSTALLED_BIN} run --config {CONFIG}"
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"
    # No "-" prefix: a failed power-off must mark the unit failed.
    assert one("ExecStopPost") == f"{INSTALLED_BIN} power-off --config {CONFIG}"
    assert one("WatchdogSec") == "2s"
    assert one("Restart") == "on-failure"
    assert one("RestartPreventExitStatus") == "2"
    assert one("StartLimitIntervalSec", "Unit")
    assert one("StartLimitBurst", "Unit")
    assert one("WantedBy", "Install") == "multi-user.target"


def test_lgpio_fifo_directory_is_writable_and_consistent() -> None:
    assert one("RuntimeDirectory") == "gunguard"
    assert one("WorkingDirectory") == "/run/gunguard"
    env = dict(v.split("=", 1) for v in values("Environment"))
    assert env["LG_WD"] == "/run/gunguard"
    assert env["GPIOZERO_PIN_FACTORY"] == "lgpio"


def test_hardening_settings() -> None:
    assert one("User") == "gunguard"
    assert one("SupplementaryGroups").split() == ["gpio", "spi", "dialout"]
    assert one("DevicePolicy") == "closed"
    assert values("DeviceAllow") == [
        "char-gpiochip rw",
        "/dev/spidev0.0 rw",
        "/dev/spidev0.1 rw",
        "char-ttyAMA rw",
        "/dev/ttyS0 rw",
        "char-ttyUSB rw",
        "char-ttyACM rw",
    ]
    assert one("PrivateNetwork") == "yes"
    assert one("RestrictAddressFamilies") == "AF_UNIX"
    assert one("ProtectSystem") == "strict"
    assert one("StateDirectory") == "gunguard"
    assert one("ConfigurationDirectory") == "gunguard"
    assert one("CapabilityBoundingSet") == ""
    assert one("AmbientCapabilities") == ""
    assert one("NoNewPrivileges") == "yes"
    assert values("SystemCallFilter") == ["@system-service", "~@privileged @resources"]
    assert values("PrivateDevices") == []  # cannot be used: see the unit's comment


def test_realtime_is_set_by_the_unit_without_capabilities() -> None:
    assert one("CPUSchedulingPolicy") == "fifo"
    assert 1 <= int(one("CPUSchedulingPriority")) <= 99
    assert one("RestrictRealtime") == "yes"
    assert values("CPUSchedulingResetOnFork") == []  # threads must inherit FIFO


def test_options_left_off_are_explained() -> None:
    text = UNIT.read_text()
    for option in (
        "MemoryDenyWriteExecute=",
        "PrivateDevices=",
        "ProcSubset=",
        "PrivateUsers=",
    ):
        comment_lines = [
            line for line in text.splitlines() if line.startswith("#") and option in line
        ]
        assert comment_lines, f"{option} is off without a comment saying why"
