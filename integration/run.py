#!/usr/bin/env python3
"""``make integration``: gunguard under a real systemd 252, checked with systemctl and journalctl.

Boots Debian bookworm's systemd as PID 1 of a ``systemd-nspawn -b`` container (a
debootstrapped tree, cached outside the checkout, under a throwaway overlay),
installs gunguard there with the project's own ``make install`` (offline, from a
wheelhouse built on this host), swaps in a mock-pin config (integration/config/),
then runs the checks against the real unit and prints PASS/FAIL with one line of
evidence each, a summary table, and exits 1 if any check failed.

Stdlib only; run by the host's python3 as root. integration/README.md has the
details; ``--help`` the options. Everything it starts, mounts or creates (the
container, its cgroups, the overlay, the run directory) is removed on exit, on a
failure or a signal too, and every step is time-bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
# What the container needs beyond minbase: systemd as PID 1, D-Bus, the interpreter
# and venv/ensurepip for `make install`, make itself, /bin/kill (ExecReload=) from procps.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "make", "procps")
ROOTFS_RECIPE = 1  # bump when the way the cached tree is prepared changes
DEFAULT_CACHE = "/var/cache/gunguard-integration"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_TIMEOUT_S = 600

UNIT = "gunguard.service"
SRC_IN = "/root/gunguard-src"  # the checkout, copied into the container
WHEELS_IN = "/root/wheelhouse"  # the host's wheelhouse, bound read-only
GUNGUARD = "/opt/gunguard/venv/bin/gunguard"  # where `make install` puts the console script
CONF = "/etc/gunguard/gunguard.yaml"
CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
}
MEMBER, OUTSIDER = "gg-member", "gg-outsider"
WATCHDOG_SEC = 2.0  # the unit's WatchdogSec=

#: Every check, in the order they run (a subset keeps this order).
CHECKS = {
    "start": "Type=notify start returns after READY=1; StatusText set",
    "eperm": "no EPERM / 'Operation not permitted' in the journal at start",
    "reload": "tighter config applies; invalid config refused, old kept; unit stays active",
    "socket": "group gunguard may use the control socket, an outsider may not",
    "fields": "a trip carries GUNGUARD_REASON / GUNGUARD_REGION journal fields",
    "security": "systemd-analyze security gunguard.service <= 1.0",
    "watchdog": "SIGSTOP -> watchdog SIGABRT -> ExecStopPost power-off -> restart",
    "faulthandler": "the watchdog SIGABRT writes every thread's Python stack to the journal",
    "stop": "systemctl stop: exit 0, Result=success, 'gunguard stopped', no traceback",
}

DEADLINE = float("inf")  # time.monotonic() by which everything must be over


def now() -> float:
    return time.monotonic()


def say(text: str) -> None:
    print(f"integration: {text}", flush=True)


class Fatal(Exception):
    """The harness itself cannot go on (no check verdict possible)."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT/SIGHUP: clean up and leave."""


class CheckFailed(Exception):
    """A check's verdict is FAIL; the message is its evidence."""


def bounded(timeout: float) -> float:
    left = DEADLINE - now()
    if left <= 0:
        raise Fatal("the overall time limit ran out")
    return min(timeout, left)


@dataclass
class Ran:
    rc: int
    out: str
    err: str


def run(
    cmd: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    check: bool = True,
    log: Path | None = None,
    preexec: Callable[[], None] | None = None,
) -> Ran:
    """Run ``cmd`` in its own process group; on a timeout the whole group is killed."""
    limit = bounded(timeout)
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        preexec_fn=preexec,  # no threads here
    )
    try:
        out_b, err_b = proc.communicate(timeout=limit)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise Fatal(f"timed out after {limit:.0f} s: {' '.join(cmd)[:200]}") from None
        raise
    out = out_b.decode("utf-8", "replace")
    err = err_b.decode("utf-8", "replace")
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n{out}{err}\n[exit {proc.returncode}]\n")
    if check and proc.returncode != 0:
        tail = "\n".join((out + err).strip().splitlines()[-25:])
        raise Fatal(f"exit {proc.returncode}: {' '.join(cmd)[:200]}\n{tail}")
    return Ran(proc.returncode, out, err)


# ---- the cached tree and the wheelhouse ---------------------------------------------------


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock, so that two runs never build the same cache entry."""
    with path.open("a") as f:
        end = now() + bounded(600)
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if now() > end:
                    raise Fatal(f"{path} stayed locked by another run") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/")
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    """rm -rf, after unmounting anything below (a killed debootstrap leaves /proc mounted)."""
    for point in mounts_under(path):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def debian_mirror() -> str:
    """The mirror apt on this host uses for SUITE (deb822 or one-line sources)."""
    if os.environ.get("GUNGUARD_INTEGRATION_MIRROR"):
        return os.environ["GUNGUARD_INTEGRATION_MIRROR"]
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text(errors="replace").split("\n\n"):
            keys = dict(
                (k.strip().lower(), v.strip())
                for k, _, v in (ln.partition(":") for ln in stanza.splitlines())
                if not k.startswith("#") and v
            )
            if SUITE in keys.get("suites", "").split() and keys.get("uris"):
                return keys["uris"].split()[0]
    for path in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]:
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1]
    return DEFAULT_MIRROR


def ensure_rootfs(cache: Path, logdir: Path) -> tuple[Path, bool]:
    """The debootstrapped tree (built once, then only ever a read-only overlay lower)."""
    arch = run(["dpkg", "--print-architecture"], timeout=10).out.strip()
    key = hashlib.sha256(f"{ROOTFS_RECIPE} {SUITE} {arch} {' '.join(PACKAGES)}".encode())
    dest = cache / f"rootfs-{SUITE}-{key.hexdigest()[:12]}"
    if (dest / "usr/lib/systemd/systemd").exists():
        return dest, False
    with locked(cache / ".lock"):
        if (dest / "usr/lib/systemd/systemd").exists():
            return dest, False
        for old in cache.glob("rootfs-*"):  # other recipes, half-built trees
            say(f"removing the old cache entry {old}")
            remove_tree(old)
        tmp = cache / f"{dest.name}.tmp-{os.getpid()}"
        mirror = debian_mirror()
        say(f"no cached tree: debootstrap {SUITE} from {mirror} (about 1.5-2.5 min)")
        try:
            include = f"--include={','.join(PACKAGES)}"
            run(
                ["debootstrap", "--variant=minbase", include, SUITE, str(tmp), mirror],
                timeout=420,
                log=logdir / "debootstrap.log",
            )
            for junk in (tmp / "var/cache/apt/archives").glob("*.deb"):
                junk.unlink()
            (tmp / ".gunguard-integration").write_text(
                json.dumps({"suite": SUITE, "packages": PACKAGES, "mirror": mirror}) + "\n"
            )
            tmp.rename(dest)
        finally:
            remove_tree(tmp)
    return dest, True


def ensure_wheelhouse(cache: Path, logdir: Path) -> tuple[Path, bool]:
    """Wheels for gunguard's dependencies and build backend, for an offline pip inside."""
    pyproject = REPO / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text())
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    key = hashlib.sha256(pyproject.read_bytes() + f"{py} {platform.machine()}".encode())
    dest = cache / f"wheelhouse-{key.hexdigest()[:12]}"
    if dest.is_dir():
        return dest, False
    with locked(cache / ".lock"):
        if dest.is_dir():
            return dest, False
        for old in cache.glob("wheelhouse-*"):
            remove_tree(old)
        tmp = cache / f"{dest.name}.tmp-{os.getpid()}"
        backend = data.get("build-system", {}).get("requires", [])
        say(f"building the wheelhouse (pip wheel . {' '.join(backend)})")
        try:
            pip = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check"]
            run(
                [*pip, "--wheel-dir", str(tmp), str(REPO), *backend],
                timeout=400,
                log=logdir / "wheelhouse.log",
            )
            # The project itself is built from the checkout by `make install`.
            own = re.sub(r"[-_.]+", "_", data["project"]["name"]).lower()
            for wheel in tmp.glob("*.whl"):
                if re.sub(r"[-_.]+", "_", wheel.name.split("-")[0]).lower() == own:
                    wheel.unlink()
            tmp.rename(dest)
        finally:
            remove_tree(tmp)
    return dest, True


def checkout_files() -> list[str]:
    """The checkout's files (tracked and new, not ignored); everything if not a git tree."""
    try:
        ls = ["ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        listed = run(["git", "-C", str(REPO), *ls], timeout=30).out
        return [p for p in listed.split("\0") if p and (REPO / p).is_file()]
    except (Fatal, FileNotFoundError):
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".demo", "build"}
        return [
            str(p.relative_to(REPO))
            for p in REPO.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(REPO).parts)
        ]


# ---- cgroups ----------------------------------------------------------------------------


def own_cgroup_dirs(name: str) -> list[Path]:
    """``name`` below this process's cgroup in the unified and the name=systemd hierarchy.

    nspawn puts the container in payload/ and itself in supervisor/ below the cgroup it
    runs in: a cgroup of our own keeps two runs (and the host's root) apart.
    """
    mounts: dict[str, Path] = {}
    with open("/proc/self/mounts") as f:
        for line in f:
            _, point, fstype, opts, *_ = line.split()
            if fstype == "cgroup2":
                mounts.setdefault("", Path(point))
            elif fstype == "cgroup" and "name=systemd" in opts.split(","):
                mounts.setdefault("name=systemd", Path(point))
    dirs = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers in mounts:
                dirs.append(mounts[controllers] / path.lstrip("/") / name)
    # The unified hierarchy first: only it has cgroup.kill.
    return sorted(dirs, key=lambda d: not (d.parent / "cgroup.controllers").exists())


def cgroup_pids(root: Path) -> set[int]:
    pids: set[int] = set()
    for procs in root.rglob("cgroup.procs") if root.is_dir() else []:
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in procs.read_text().split()}
    return pids


def destroy_cgroups(dirs: list[Path], timeout: float = 10.0) -> None:
    """Kill every process in ``dirs`` and remove them, leaves first."""
    end = time.monotonic() + timeout
    while any(cgroup_pids(d) for d in dirs) and time.monotonic() < end:
        for d in dirs:
            kill = d / "cgroup.kill"
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
            for pid in cgroup_pids(d):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for d in dirs:
        if d.is_dir():
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                d.rmdir()


def reap_stale(tmp_root: Path) -> None:
    """Remove what a killed earlier run left behind: its cgroups, overlay, run directory."""

    def dead(pid: str) -> bool:
        try:
            return b"run.py" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True

    for d in own_cgroup_dirs("x"):
        for stale in d.parent.glob("gunguard-integration-*"):
            if dead(stale.name.rsplit("-", 1)[-1]):
                say(f"removing a stale cgroup {stale}")
                destroy_cgroups([stale])
    for stale in tmp_root.glob("gunguard-integration.*"):
        if dead(stale.name.split(".")[1]):
            say(f"removing a stale run directory {stale}")
            remove_tree(stale)


# ---- the container ------------------------------------------------------------------------


@dataclass
class Entry:
    """One journal entry: monotonic time (s), PID, message, every field."""

    mono: float
    pid: int
    msg: str
    fields: dict[str, str]


def _text(value: object) -> str:
    if isinstance(value, list):  # journalctl -o json: binary or multi-valued field
        if value and all(isinstance(v, int) for v in value):
            return bytes(value).decode("utf-8", "replace")
        return " ".join(_text(v) for v in value)
    return "" if value is None else str(value)


class Container:
    def __init__(self, rootfs: Path, wheelhouse: Path, tmp_root: Path, logdir: Path) -> None:
        self.rootfs = rootfs
        self.wheelhouse = wheelhouse
        self.logdir = logdir
        self.name = f"gg-it-{os.getpid()}"
        self.dir = Path(
            tempfile.mkdtemp(prefix=f"gunguard-integration.{os.getpid()}.", dir=tmp_root)
        )
        self.merged = self.dir / "merged"
        self.mounted = False
        self.cgroups = own_cgroup_dirs(f"gunguard-integration-{os.getpid()}")
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.console = None
        self.pid1 = 0
        self.lock_file: Path | None = None
        self.stopped: set[int] = set()  # host PIDs we SIGSTOPped (SIGCONT on the way out)

    # -- life cycle
    def boot(self) -> float:
        """Overlay, checkout copy, nspawn -b; returns the seconds until systemd was up."""
        for d in ("upper", "work", "merged"):
            (self.dir / d).mkdir()
        opts = f"lowerdir={self.rootfs},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}"
        if (
            run(
                ["mount", "-t", "overlay", "overlay", "-o", opts, str(self.merged)],
                timeout=20,
                check=False,
            ).rc
            == 0
        ):
            self.mounted = True
        else:  # no overlayfs here: a plain copy (slower, just as throwaway)
            say("overlayfs unavailable: copying the cached tree")
            run(["cp", "-a", f"{self.rootfs}/.", str(self.merged)], timeout=120)
        st = self.merged.stat()
        self.lock_file = Path(f"/run/systemd/nspawn/locks/inode-{st.st_dev}:{st.st_ino}")
        src = self.merged / SRC_IN.lstrip("/")
        for rel in checkout_files():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel, follow_symlinks=False)
        for d in self.cgroups:
            d.mkdir(parents=True, exist_ok=True)
        cgroups = self.cgroups

        def join_cgroups() -> None:
            for d in cgroups:
                (d / "cgroup.procs").write_text(str(os.getpid()))

        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        cmd = [
            "systemd-nspawn",
            "--quiet",
            "--boot",
            f"--directory={self.merged}",
            f"--machine={self.name}",
            # No host bus, no machined: without these nspawn cannot start.
            "--register=no",
            "--keep-unit",
            # PrivateNetwork= in the unit needs a netns nspawn lets it configure.
            "--private-network",
            # systemd inside loads BPF programs for DevicePolicy=/IPAddressDeny=.
            "--system-call-filter=bpf",
            "--capability=CAP_BPF",
            # The journal stays in the throwaway tree, never in the host's /var/log.
            "--link-journal=no",
            # Boot messages to console.log; no terminal needed (CI has no stdin).
            "--console=read-only",
            f"--bind-ro={self.wheelhouse}:{WHEELS_IN}",
        ]
        started = now()
        self.console = (self.logdir / "console.log").open("wb")
        self.nspawn = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self.console,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=join_cgroups,
        )
        end = now() + bounded(60)
        while not self.pid1:
            self._check_nspawn()
            if now() > end:
                raise Fatal("the container's PID 1 did not appear within 60 s")
            self.pid1 = self._find_pid1()
            time.sleep(0.05)
        end = now() + bounded(90)
        while True:
            self._check_nspawn()
            r = self.sh("systemctl", "is-system-running", "--wait", timeout=60, check=False)
            state = r.out.strip()
            if state in ("running", "degraded"):
                break
            if now() > end:
                raise Fatal(f"systemd did not finish booting: {state or r.err.strip()}")
            time.sleep(0.2)
        if state == "degraded":
            failed = self.sh("systemctl", "--failed", "--plain", "--no-legend", check=False).out
            say(f"the container booted degraded: {' '.join(failed.split())}")
        return now() - started

    def _check_nspawn(self) -> None:
        if self.nspawn is not None and self.nspawn.poll() is not None:
            tail = (self.logdir / "console.log").read_text(errors="replace").splitlines()[-20:]
            raise Fatal(f"systemd-nspawn exited ({self.nspawn.returncode}):\n" + "\n".join(tail))

    def _find_pid1(self) -> int:
        for pid in sorted(set().union(*(cgroup_pids(d) for d in self.cgroups))):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("NSpid:"):
                        ids = line.split()[1:]
                        if len(ids) > 1 and ids[-1] == "1":
                            return pid
        return 0

    def close(self) -> None:
        """Stop and remove everything; never raises (it runs on the way out of failures)."""
        steps: list[tuple[str, Callable[[], None]]] = [
            ("resume stopped processes", self._resume),
            ("stop the container", self._stop_nspawn),
            ("remove the cgroups", lambda: destroy_cgroups(self.cgroups)),
            ("unmount the overlay", self._unmount),
            ("remove the run directory", lambda: remove_tree(self.dir)),
            ("remove nspawn's runtime files", self._nspawn_leftovers),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # keep cleaning
                say(f"cleanup: could not {what}: {exc}")

    def _resume(self) -> None:
        for pid in self.stopped:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)

    def _stop_nspawn(self) -> None:
        proc = self.nspawn
        if proc is not None and proc.poll() is None:
            proc.terminate()  # nspawn asks systemd inside to power off
            try:
                proc.wait(8)
            except subprocess.TimeoutExpired:
                destroy_cgroups(self.cgroups)
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self.console is not None:
            self.console.close()

    def _unmount(self) -> None:
        if not self.mounted:
            return
        for _ in range(20):
            if subprocess.run(["umount", str(self.merged)], capture_output=True).returncode == 0:
                self.mounted = False
                return
            time.sleep(0.25)
        subprocess.run(["umount", "-l", str(self.merged)], capture_output=True)
        self.mounted = False

    def _nspawn_leftovers(self) -> None:
        # nspawn removes these itself only where /run is a tmpfs; not on every host.
        runtime = Path("/run/systemd/nspawn")
        remove_tree(runtime / "propagate" / self.name)
        if self.lock_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.lock_file.unlink()
        for d in (runtime / "propagate", runtime / "locks", runtime):
            with contextlib.suppress(OSError):
                d.rmdir()  # only when empty: another container's files stay

    # -- running things inside
    def sh(
        self,
        *args: str,
        timeout: float = 30,
        check: bool = True,
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> Ran:
        inner = [f"{k}={v}" for k, v in {**CONTAINER_ENV, **(env or {})}.items()]
        cmd = ["nsenter", "-t", str(self.pid1), "-a", "env", "-i", *inner, *args]
        return run(cmd, timeout=timeout, check=check, log=log)

    def show(self, *props: str) -> dict[str, str]:
        out = self.sh("systemctl", "show", UNIT, *(f"--property={p}" for p in props)).out
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def systemctl(self, *args: str, timeout: float = 45) -> Ran:
        return self.sh("systemctl", *args, timeout=timeout, check=False)

    def journal(self, since: float = 0.0) -> list[Entry]:
        out = self.sh("journalctl", "--unit", UNIT, "--output=json", "--no-pager", timeout=30).out
        entries = []
        for line in out.splitlines():
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                mono = int(data.get("__MONOTONIC_TIMESTAMP", 0)) / 1e6
                if mono >= since:
                    fields = {k: _text(v) for k, v in data.items()}
                    pid = int(fields.get("_PID") or 0)
                    entries.append(Entry(mono, pid, fields.get("MESSAGE", ""), fields))
        return sorted(entries, key=lambda e: e.mono)

    def wait_journal(
        self, since: float, want: Callable[[Entry], bool], timeout: float = 8.0
    ) -> Entry | None:
        end = now() + bounded(timeout)
        while True:
            for entry in self.journal(since):
                if want(entry):
                    return entry
            if now() > end:
                return None
            time.sleep(0.2)

    def host_pid(self, pid: int) -> int:
        """The host's PID for the container's ``pid`` (signals from here are precise)."""
        ns = os.readlink(f"/proc/{self.pid1}/ns/pid")
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.readlink(d / "ns/pid") != ns:
                    continue
                for line in (d / "status").read_text().splitlines():
                    if line.startswith("NSpid:") and line.split()[-1] == str(pid):
                        return int(d.name)
        raise CheckFailed(f"no host process for container PID {pid}")

    def dump_logs(self) -> None:
        r = self.sh("journalctl", "--no-pager", "--output=short-monotonic", timeout=60, check=False)
        (self.logdir / "journal.txt").write_text(r.out + r.err)


# ---- the checks ---------------------------------------------------------------------------


def short(text: str, width: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class Episode:
    """One watchdog abort, observed once, judged by two checks."""

    old_pid: int
    t0: float
    entries: list[Entry]
    stages: list[tuple[str, float | None]]
    before: dict[str, str]
    after: dict[str, str]
    stop_post: str | None


@dataclass
class Session:
    c: Container
    first_start: tuple[float, float] | None = None  # (before `systemctl start`, READY)
    episode: Episode | None = None
    results: list[tuple[str, bool, str]] = field(default_factory=list)

    # -- helpers
    def start(self) -> tuple[Ran, float]:
        mark = now()
        r = self.c.systemctl("start", UNIT)
        if self.first_start is None and r.rc == 0:
            p = self.c.show("ActiveEnterTimestampMonotonic")
            self.first_start = (mark, int(p["ActiveEnterTimestampMonotonic"]) / 1e6)
        return r, now() - mark

    def ensure_active(self) -> dict[str, str]:
        p = self.c.show("ActiveState", "SubState")
        if (p["ActiveState"], p["SubState"]) != ("active", "running"):
            if p["ActiveState"] == "failed":
                self.c.systemctl("reset-failed", UNIT)
            r, _ = self.start()
            if r.rc != 0:
                raise CheckFailed(f"cannot start {UNIT}: {short(r.err)}")
        return self.c.show("MainPID", "NRestarts", "StatusText")

    def install_config(self, name: str) -> None:
        owner = ["install", "-m", "0640", "-o", "root", "-g", "gunguard"]
        self.c.sh(*owner, f"{SRC_IN}/integration/config/{name}", CONF)

    def gunguard(self, *args: str, user: str | None = None) -> Ran:
        prefix = ["runuser", "-u", user, "--"] if user else []
        return self.c.sh(*prefix, GUNGUARD, *args, timeout=30, check=False)

    # -- 1
    def check_start(self) -> str:
        if self.c.show("ActiveState")["ActiveState"] != "inactive":
            self.c.systemctl("stop", UNIT)
            self.c.systemctl("reset-failed", UNIT)
        r, took = self.start()
        props = "ActiveState SubState StatusText Type ExecMainStartTimestampMonotonic"
        p = self.c.show(*props.split(), "ActiveEnterTimestampMonotonic")
        state = f"{p['ActiveState']}/{p['SubState']}"
        ready = int(p["ActiveEnterTimestampMonotonic"]) - int(p["ExecMainStartTimestampMonotonic"])
        text = p["StatusText"]
        evidence = (
            f"Type={p['Type']}: `systemctl start` exit {r.rc} after {took:.2f} s, {state}, READY=1 "
            f"{ready / 1e6:.2f} s after exec, StatusText={text!r}"
        )
        if p["Type"] != "notify":
            raise CheckFailed(f"{evidence}: Type={p['Type']}, not notify")
        if r.rc != 0 or state != "active/running":
            raise CheckFailed(f"{evidence}; {short(r.err)}")
        if not re.fullmatch(r"idle|armed: \S+|tripped: \S+", text):
            raise CheckFailed(f"{evidence}: not a state line")
        return evidence

    # -- 9
    def check_eperm(self) -> str:
        self.ensure_active()
        assert self.first_start is not None
        mark, ready = self.first_start
        time.sleep(max(0.0, ready + 1.0 - now()))  # the start, plus a second after READY
        window = [e for e in self.c.journal(mark) if e.mono <= ready + 1.0]
        bad = [e for e in window if re.search(r"EPERM|Operation not permitted", e.msg)]
        if bad:
            raise CheckFailed(f"{len(bad)} line(s) at start, first: {short(bad[0].msg)!r}")
        return f"none in the {len(window)} journal lines from `systemctl start` to READY+1 s"

    # -- 2
    def check_reload(self) -> str:
        before = self.ensure_active()
        pid = before["MainPID"]
        self.install_config("tighter.yaml")
        mark = now()
        r = self.c.systemctl("reload", UNIT)
        applied = self.c.wait_journal(mark, lambda e: "tighter config applied" in e.msg)
        p = self.c.show("ActiveState", "MainPID", "StatusText")
        if r.rc != 0 or applied is None:
            raise CheckFailed(
                f"tighter config: reload exit {r.rc}, no 'tighter config applied' "
                f"in the journal; {short(r.err)}"
            )
        self.install_config("invalid.yaml")
        mark = now()
        r = self.c.systemctl("reload", UNIT)
        refused = self.c.wait_journal(mark, lambda e: "keeping the running config" in e.msg)
        after_bad = self.c.show("ActiveState", "SubState", "MainPID", "NRestarts")
        self.install_config("tighter.yaml")  # back to a valid file for what follows
        mark = now()
        r2 = self.c.systemctl("reload", UNIT)
        kept = self.c.wait_journal(mark, lambda e: "unchanged" in e.msg)
        final = self.c.show("ActiveState", "SubState", "MainPID", "StatusText")
        problems = []
        if r.rc != 0 or r2.rc != 0:
            problems.append(f"reload exit {r.rc}/{r2.rc}")
        if refused is None:
            problems.append("invalid config: no 'keeping the running config' in the journal")
        if kept is None:
            problems.append("re-reading the tighter file did not say 'unchanged'")
        for state in (p, after_bad, final):
            if state["ActiveState"] != "active" or state["MainPID"] != pid:
                problems.append(
                    f"unit {state['ActiveState']} MainPID {state['MainPID']} (was {pid})"
                )
                break
        if problems:
            raise CheckFailed("; ".join(problems))
        assert applied is not None and refused is not None
        return (
            f"{short(applied.msg, 70)!r}; invalid: {short(refused.msg, 90)!r}; tighter file "
            f"again: unchanged; active, MainPID {pid} throughout, "
            f"StatusText={final['StatusText']!r}"
        )

    # -- 7
    def check_socket(self) -> str:
        self.ensure_active()
        for user, extra in ((MEMBER, ["--groups", "gunguard"]), (OUTSIDER, [])):
            if self.c.sh("id", user, check=False).rc != 0:
                self.c.sh(
                    "useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", *extra, user
                )
        sock = self.c.sh(
            "stat", "-c", "%A %U:%G %n", "/run/gunguard", "/run/gunguard/control.sock", check=False
        ).out.split("\n")
        member = self.gunguard("status", user=MEMBER)
        outsider = self.gunguard("status", user=OUTSIDER)
        first = (member.out.strip().splitlines() or [""])[0]
        evidence = (
            f"{MEMBER}: exit {member.rc} {short(first, 40)!r}; {OUTSIDER}: exit {outsider.rc} "
            f"{short(outsider.err or outsider.out, 60)!r}; {' | '.join(s for s in sock if s)}"
        )
        if member.rc != 0 or not first.startswith("gunguard:"):
            raise CheckFailed(f"member refused: {evidence}; {short(member.err)}")
        if outsider.rc == 0:
            raise CheckFailed(f"outsider allowed: {evidence}")
        if not re.search(r"permission", outsider.err + outsider.out, re.I):
            raise CheckFailed(f"outsider failed, but not for want of permission: {evidence}")
        return evidence

    # -- 5
    def check_fields(self) -> str:
        p = self.ensure_active()
        if p["StatusText"].startswith("tripped"):
            self.gunguard("reset")
        region = "calf-left"
        r = self.gunguard("region", region)
        end = now() + 3
        while self.c.show("StatusText")["StatusText"] != f"armed: {region}" and now() < end:
            time.sleep(0.1)
        if r.rc != 0:
            raise CheckFailed(f"could not arm {region}: {short(r.out + r.err)}")
        pid = int(p["MainPID"])
        host = self.c.host_pid(pid)
        mark = now()
        os.kill(host, signal.SIGSTOP)  # 0.3 s: a loop_overrun trip, far from WatchdogSec=2s
        self.c.stopped.add(host)
        time.sleep(0.3)
        os.kill(host, signal.SIGCONT)
        self.c.stopped.discard(host)
        self.c.wait_journal(
            mark,
            lambda e: e.pid == pid and ("loop_overrun" in e.msg or "GUNGUARD_REASON" in e.fields),
        )
        time.sleep(0.3)
        entries = [e for e in self.c.journal(mark) if e.pid == pid]
        self.gunguard("reset")
        tagged = [e for e in entries if "GUNGUARD_REASON" in e.fields]
        for e in tagged:
            if (
                e.fields["GUNGUARD_REASON"] == "loop_overrun"
                and e.fields.get("GUNGUARD_REGION") == region
            ):
                extra = sorted(k for k in e.fields if k.startswith("GUNGUARD_"))
                return (
                    f"GUNGUARD_REASON=loop_overrun GUNGUARD_REGION={region} "
                    f"(fields {', '.join(extra)}; _TRANSPORT={e.fields.get('_TRANSPORT')})"
                )
        if tagged:
            e = tagged[0]
            found = {k: v for k, v in e.fields.items() if k.startswith("GUNGUARD_")}
            raise CheckFailed(f"wanted REASON=loop_overrun REGION={region}, got {found}")
        text = [e for e in entries if "loop_overrun" in e.msg]
        if not text:
            raise CheckFailed(f"no loop_overrun trip after a 0.3 s SIGSTOP with {region} armed")
        e = text[0]
        return_fail = (
            f"trip is text only: {short(e.msg, 90)!r} (_TRANSPORT={e.fields.get('_TRANSPORT')}, "
            "no GUNGUARD_* field)"
        )
        raise CheckFailed(return_fail)

    # -- 6
    def check_security(self) -> str:
        r = self.c.sh("systemd-analyze", "security", UNIT, "--no-pager", timeout=60, check=False)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", r.out)
        if m is None:
            raise CheckFailed(f"no score: exit {r.rc} {short(r.err or r.out[-200:])}")
        score = float(m.group(1))
        evidence = f"overall exposure {score} {m.group(2)} (online, systemd 252 in the container)"
        if score > 1.0:
            raise CheckFailed(f"{evidence} > 1.0")
        return evidence + " <= 1.0"

    # -- 3 and 8
    def watchdog_episode(self) -> Episode:
        if self.episode is not None:
            return self.episode
        before = self.ensure_active()
        old = int(before["MainPID"])
        host = self.c.host_pid(old)
        t0 = now()
        os.kill(host, signal.SIGSTOP)
        self.c.stopped.add(host)
        stop_post = None
        after: dict[str, str] = {}
        end = now() + bounded(30)
        props = ("ActiveState", "SubState", "MainPID", "NRestarts", "Result", "ExecStopPost")
        while now() < end:
            after = self.c.show(*props)
            if after["SubState"] == "auto-restart" and stop_post is None:
                stop_post = after["ExecStopPost"]
            if (
                int(after["NRestarts"]) > int(before["NRestarts"])
                and (after["ActiveState"], after["SubState"]) == ("active", "running")
                and int(after["MainPID"]) not in (0, old)
            ):
                break
            time.sleep(0.1)
        self.c.stopped.discard(host)
        time.sleep(0.5)  # the last stream lines of the dead process
        entries = self.c.journal(t0)

        def first(pattern: str, after_t: float = 0.0, pid: int | None = 1) -> float | None:
            for e in entries:
                if (
                    e.mono >= after_t
                    and (pid is None or e.pid == pid)
                    and re.search(pattern, e.msg)
                ):
                    return e.mono - t0
            return None

        sched = first(r"Scheduled restart job")
        # ExecStopPost='s lines: neither PID 1 nor either main process, before the restart.
        # (Not by _CMDLINE: journald reads it from /proc, gone once the process exited.)
        mains = (0, 1, old, int(after.get("MainPID") or 0))
        end_t = t0 + sched if sched is not None else float("inf")
        post = [e for e in entries if e.pid not in mains and e.mono < end_t]
        stages = [
            ("watchdog timeout", first(r"Watchdog timeout")),
            ("SIGABRT sent", first(rf"Killing process {old} .*SIGABRT")),
            ("main process exited", first(r"Main process exited")),
            ("ExecStopPost power-off logged", post[0].mono - t0 if post else None),
            ("unit failed (stop-post done)", first(r"Failed with result")),
            ("restart scheduled", sched),
            (
                "READY again (Started)",
                first(r"^Started ", t0 + sched) if sched is not None else None,
            ),
        ]
        self.episode = Episode(old, t0, entries, stages, before, after, stop_post)
        return self.episode

    def check_watchdog(self) -> str:
        ep = self.watchdog_episode()
        t = dict(ep.stages)
        pid1 = [e for e in ep.entries if e.pid == 1]
        exited = next((e.msg for e in pid1 if "Main process exited" in e.msg), "")
        failed = next((e.msg for e in pid1 if "Failed with result" in e.msg), "")
        m = re.search(r"code=(\w+) ; status=(\d+)", ep.stop_post or "")
        post = f"code={m.group(1)} status={m.group(2)}" if m else "not seen"
        problems = []
        if t["watchdog timeout"] is None:
            problems.append("no 'Watchdog timeout'")
        elif t["watchdog timeout"] > WATCHDOG_SEC + 1.0:
            problems.append(f"watchdog fired {t['watchdog timeout']:.2f} s after SIGSTOP")
        if "6/ABRT" not in exited:
            problems.append(f"main process: {exited or 'no exit seen'}")
        if "'watchdog'" not in failed:
            problems.append(f"result: {failed or 'none'}")
        if not (m and m.groups() == ("exited", "0")) and t["ExecStopPost power-off logged"] is None:
            problems.append("ExecStopPost (power-off) not seen to run")
        elif m and m.groups() != ("exited", "0"):
            problems.append(f"ExecStopPost {post}")
        restarted = int(ep.after.get("NRestarts", 0)) > int(ep.before["NRestarts"])
        if not restarted or ep.after.get("ActiveState") != "active":
            problems.append(
                f"not restarted: {ep.after.get('ActiveState')} NRestarts "
                f"{ep.after.get('NRestarts')}"
            )
        stages = ", ".join(f"{n} +{v:.2f}s" for n, v in ep.stages if v is not None)
        evidence = (
            f"{stages}; {exited.split(': ', 1)[-1]}; ExecStopPost {post}; NRestarts "
            f"{ep.before['NRestarts']}->{ep.after.get('NRestarts')}, MainPID {ep.old_pid}->"
            f"{ep.after.get('MainPID')}"
        )
        if problems:
            raise CheckFailed(f"{'; '.join(problems)} ({evidence})")
        return evidence

    def check_faulthandler(self) -> str:
        ep = self.watchdog_episode()
        lines = [e.msg for e in ep.entries if e.pid == ep.old_pid]
        heads = [
            ln
            for ln in lines
            if re.match(r"(Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\):", ln)
        ]
        frames = [ln for ln in lines if re.match(r'\s*File ".*", line \d+ in \S+', ln)]
        if heads and frames:
            return (
                f"{len(heads)} thread stacks, {len(frames)} frames from PID {ep.old_pid}, e.g. "
                f"{short(heads[0], 50)!r} / {short(frames[0], 70)!r}"
            )
        exited = next(
            (e.msg for e in ep.entries if e.pid == 1 and "Main process exited" in e.msg), ""
        )
        last = short(lines[-1], 70) if lines else "nothing"
        raise CheckFailed(
            f"no 'Thread 0x… (most recent call first)' / 'File \"…\", line N' from PID "
            f"{ep.old_pid} after the watchdog SIGABRT ({len(lines)} lines after SIGSTOP, last "
            f"{last!r}); {exited.split(': ', 1)[-1] or 'exit not seen'}"
        )

    # -- 4
    def check_stop(self) -> str:
        p = self.ensure_active()
        pid = int(p["MainPID"])
        mark = now()
        r = self.c.systemctl("stop", UNIT)
        took = now() - mark
        s = self.c.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
        self.c.wait_journal(mark, lambda e: e.pid == 1 and e.msg.startswith("Stopped "), 5)
        entries = self.c.journal()
        stopped = any(
            e.pid == pid and "gunguard stopped" in e.msg for e in entries if e.mono >= mark
        )
        tb = next((e for e in entries if "Traceback (most recent call last)" in e.msg), None)
        problems = []
        if r.rc != 0:
            problems.append(f"`systemctl stop` exit {r.rc}")
        if s["Result"] != "success" or s["ExecMainStatus"] != "0":
            problems.append(
                f"Result={s['Result']} exit status {s['ExecMainStatus']} ({s['ActiveState']})"
            )
        if not stopped:
            problems.append("no 'gunguard stopped' in the journal")
        if tb is not None:
            same = [e for e in entries if e.pid == tb.pid and e.mono >= tb.mono]
            last = next((e.msg for e in same[1:] if e.msg[:1] not in (" ", "\t")), "?")
            problems.append(f"traceback in the journal (PID {tb.pid}): {short(last, 110)!r}")
        if problems:
            raise CheckFailed("; ".join(problems))
        return (
            f"`systemctl stop` exit 0 in {took:.2f} s, Result=success, exit status 0, "
            f"'gunguard stopped' logged, no traceback in {len(entries)} journal lines"
        )


# ---- driver -----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checks",
        default=os.environ.get("CHECKS", ""),
        help=f"space/comma-separated subset of: {' '.join(CHECKS)} (default: all)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("GUNGUARD_INTEGRATION_TIMEOUT", DEFAULT_TIMEOUT_S)),
        help=f"overall limit in seconds (default {DEFAULT_TIMEOUT_S})",
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    return parser.parse_args()


def on_signal(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def on_alarm(signum: int, frame: object) -> None:
    raise Fatal("the overall time limit ran out")


def print_summary(
    session: Session | None, timings: list[tuple[str, float]], selected: list[str]
) -> None:
    results = session.results if session else []
    done = {name for name, _, _ in results}
    rows = [(n, "PASS" if ok else "FAIL", ev) for n, ok, ev in results]
    rows += [(n, "FAIL", "not run (the harness stopped first)") for n in selected if n not in done]
    print("\n" + "=" * 100)
    print(f"{'check':<13} {'result':<6} evidence")
    print(f"{'-' * 13} {'-' * 6} {'-' * 79}")
    for name, verdict, evidence in rows:
        print(f"{name:<13} {verdict:<6} {evidence}")
    if session is not None and session.episode is not None:
        print("\nwatchdog stages (seconds after SIGSTOP of the main PID):")
        for name, value in session.episode.stages:
            print(f"  {name:<32} {'-' if value is None else f'+{value:.2f}'}")
    if timings:
        print("\ntimings: " + ", ".join(f"{n} {v:.1f} s" for n, v in timings))
    passed = sum(v == "PASS" for _, v, _ in rows)
    print(f"integration: {passed} passed, {len(rows) - passed} failed", flush=True)


def main() -> int:
    global DEADLINE
    args = parse_args()
    if args.list:
        for name, what in CHECKS.items():
            print(f"{name:<13} {what}")
        return 0
    selected = [c for c in re.split(r"[\s,]+", args.checks.strip()) if c] or list(CHECKS)
    unknown = [c for c in selected if c not in CHECKS]
    if unknown:
        print(f"integration: unknown check(s) {' '.join(unknown)}; choose from: {' '.join(CHECKS)}")
        return 2
    selected = [c for c in CHECKS if c in selected]

    cache = Path(os.environ.get("GUNGUARD_INTEGRATION_CACHE") or DEFAULT_CACHE)
    rootfs_cached = any((p / "usr/lib/systemd/systemd").exists() for p in cache.glob("rootfs-*"))
    debootstrap = shutil.which("debootstrap") or shutil.which("/usr/sbin/debootstrap")
    if shutil.which("systemd-nspawn") is None:
        print("integration: SKIPPED: systemd-nspawn not found (apt-get install systemd-container)")
        return 0
    if debootstrap is None and not rootfs_cached:
        print(
            "integration: SKIPPED: debootstrap not found and no cached tree "
            "(apt-get install debootstrap)"
        )
        return 0
    if os.geteuid() != 0:
        print("integration: needs root (systemd-nspawn, overlay mounts, cgroups)")
        return 2
    if sys.version_info[:2] != (3, 11):
        print(
            f"integration: the host's wheels must suit the container's Python 3.11; this is "
            f"{platform.python_version()} (run with PYTHON=python3.11)"
        )
        return 2
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"

    DEADLINE = now() + args.timeout
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout) + 5)  # a backstop for anything not bounded below

    started = now()
    timings: list[tuple[str, float]] = []
    session: Session | None = None
    container: Container | None = None
    logdir = cache / "last-run"
    tmp_root = Path(os.environ.get("GUNGUARD_INTEGRATION_TMP") or "/var/tmp")
    status = 1
    try:
        cache.mkdir(parents=True, exist_ok=True)
        remove_tree(logdir)
        logdir.mkdir()
        reap_stale(tmp_root)
        say(f"checks: {' '.join(selected)}; cache {cache}; logs {logdir}")
        t = now()
        rootfs, built = ensure_rootfs(cache, logdir)
        timings.append(("debootstrap" if built else "rootfs (cached)", now() - t))
        t = now()
        wheels, built = ensure_wheelhouse(cache, logdir)
        timings.append(("wheelhouse" if built else "wheelhouse (cached)", now() - t))
        container = Container(rootfs, wheels, tmp_root, logdir)
        boot = container.boot()
        version = container.sh("systemctl", "--version").out.split("\n")[0]
        timings.append(("boot", boot))
        say(f"booted {version.split(' (')[0]} as PID 1 (host PID {container.pid1}) in {boot:.1f} s")
        t = now()
        container.sh(
            "make",
            "-C",
            SRC_IN,
            "install",
            env={
                "PIP_NO_INDEX": "1",
                "PIP_FIND_LINKS": WHEELS_IN,
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "EXTRAS": "",
            },
            timeout=300,
            log=logdir / "install.log",
        )
        timings.append(("make install", now() - t))
        say(f"`make install` (offline, EXTRAS=) in {now() - t:.1f} s")
        session = Session(container)
        session.install_config("gunguard.yaml")
        t = now()
        for name in selected:
            try:
                evidence, ok = getattr(session, f"check_{name}")(), True
            except CheckFailed as exc:
                evidence, ok = str(exc), False
            except Fatal as exc:
                if now() >= DEADLINE:
                    raise
                evidence, ok = f"harness: {short(str(exc), 200)}", False
            session.results.append((name, ok, evidence))
            print(f"{'PASS' if ok else 'FAIL'} {name}: {evidence}", flush=True)
        timings.append(("checks", now() - t))
        status = 0 if all(ok for _, ok, _ in session.results) else 1
    except Fatal as exc:
        say(f"ERROR: {exc}")
        status = 1
    except Interrupted as exc:
        say(f"interrupted ({exc}): cleaning up")
        status = 130
    finally:
        signal.alarm(0)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # cleanup must finish
        if container is not None:
            if container.pid1:
                with contextlib.suppress(Exception):
                    DEADLINE = now() + 60
                    container.dump_logs()
            t = now()
            container.close()
            timings.append(("cleanup", now() - t))
        timings.append(("total", now() - started))
        print_summary(session, timings, selected)
        say(f"logs (console, make install, container journal): {logdir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
