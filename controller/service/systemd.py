"""The daemon as a systemd service: notify, watchdog, status, reload, fail-safe signals.

* ``READY=1`` only once the config is valid, the hardware is built and the power
  pin has been read back as off (the :class:`~gunguard.service.daemon.Daemon` constructor
  guarantees all three, so readiness is announced from its ``run``).
* ``WATCHDOG=1`` comes from the control-loop thread itself, after a tick, and only
  while ticks are fresh: a stalled loop stops the pings and systemd aborts us.
* ``STATUS=`` follows the state: idle, armed: REGION, tripped: REASON.
* SIGHUP reloads in a worker thread (YAML parsing must not delay ticks): an invalid
  file keeps the running config; tighter limits apply at the next tick; looser ones
  wait until no region is armed; hardware changes need a restart.
* SIGABRT (systemd's watchdog abort) cuts power, writes every thread's Python stack
  to the journal, then lets the abort kill the process.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

from gunguard.config import loader as configfile
from gunguard.config.loader import ConfigError
from gunguard.config.reload import LOOSER, RESTART, SAME, compare
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core import events
from gunguard.core.events import Event
from gunguard.core.plugins import Configure
from gunguard.service.daemon import Daemon
from gunguard.service.sdnotify import Notifier, WatchdogGate

log = logging.getLogger(__name__)

#: How long a reload waits for the control loop to adopt new limits before READY=1.
APPLY_WAIT_S = 0.5


def describe_state(daemon: Daemon) -> str:
    """The one-line state for ``STATUS=`` and logs."""
    supervisor = daemon.supervisor
    trip = supervisor.latched
    if trip is not None:
        return f"tripped: {trip.reason}"
    if supervisor.region is not None:
        return f"armed: {supervisor.region}"
    return "idle"


class Reloader:
    """Re-reads the config on request, in its own thread; applies only what is safe.

    A valid new config is handed to the supervisor as a
    :class:`~gunguard.core.plugins.Configure` intent, applied at its next tick; a looser
    one waits (in the supervisor) until no region is armed. Nothing here runs inside a
    supervisor event or under its lock.
    """

    def __init__(self, daemon: Daemon, config_source: str, notifier: Notifier) -> None:
        self._daemon = daemon
        self._source = config_source
        self._notifier = notifier
        self._wake = threading.Event()
        #: Every config handed to the supervisor, by tag: the one it runs is the one
        #: whose tag it reports, so a reload is judged against what is really in force.
        self._by_tag: dict[str, GunguardConfig] = {configfile.config_hash(daemon.cfg): daemon.cfg}
        self.results: list[str] = []  # what each reload did (tests, status)
        self._thread = threading.Thread(target=self._run, name="gunguard-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        """Ask for a reload (safe from a signal handler)."""
        self._wake.set()

    def _run(self) -> None:
        stop = self._daemon.stop_event
        while not stop.is_set():
            if self._wake.wait(0.2):
                self._wake.clear()
                self.reload_now()

    def reload_now(self) -> str:
        self._notifier.reloading()
        try:
            result = self._reload()
        except Exception as exc:  # nothing a reload does may take the daemon down
            log.exception("reload failed")
            result = f"reload failed: {exc}"
        self.results.append(result)
        self._notifier.ready(describe_state(self._daemon))
        return result

    def running_config(self) -> GunguardConfig:
        """The config whose limits the supervisor applies now."""
        return self._by_tag.get(self._daemon.supervisor.config_tag, self._daemon.cfg)

    def _reload(self) -> str:
        try:
            new = configfile.load(self._source)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload rejected, keeping the running config: %s", problem)
            return "rejected: invalid config"
        daemon = self._daemon
        plan = compare(self.running_config(), new)
        if plan.kind == SAME:
            log.info("reload: config unchanged")
            return "unchanged"
        if plan.kind == RESTART:
            for reason in plan.reasons:
                log.error("reload rejected, keeping the running config: %s", reason)
            return "rejected: needs restart"
        tag = configfile.config_hash(new)
        self._by_tag[tag] = new
        daemon.cfg = new
        looser = plan.kind == LOOSER
        deferred = looser and daemon.supervisor.region is not None
        daemon.supervisor.post_intent(Configure(resolve_limits(new), tag, when_idle=looser))
        if deferred:
            for reason in plan.reasons:
                log.warning("reload: looser limit deferred until no region is armed: %s", reason)
            return "deferred: looser while armed"
        self._wait_until_applied(tag)  # so READY=1 reports the state under the new limits
        log.warning("reload: %s config applied (hash %s)", plan.kind, tag)
        return f"applied: {plan.kind}"

    def _wait_until_applied(self, tag: str) -> bool:
        """Wait (bounded) for the loop's next tick to adopt ``tag``."""
        supervisor = self._daemon.supervisor
        deadline = time.monotonic() + APPLY_WAIT_S
        while supervisor.config_tag != tag:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True


def attach_systemd(
    daemon: Daemon, config_source: str, notifier: Notifier | None = None
) -> Reloader:
    """Wire notify, watchdog, status, SIGHUP and SIGABRT into ``daemon``."""
    notifier = notifier or Notifier.from_env()
    gate = WatchdogGate(notifier)
    max_gap = daemon.cfg.loop.max_loop_gap_ms / 1000.0
    last = [daemon.clock.monotonic()]

    def watchdog_hook(now: float) -> None:
        healthy = now - last[0] <= max_gap
        last[0] = now
        gate.maybe_ping(now, healthy)

    if gate.enabled:
        daemon.loop.add_hook(watchdog_hook)

    shown = [""]

    def on_event(event: Event) -> None:
        if event.kind in (events.POWER, events.TRIP, events.RESET, events.REGION):
            state = describe_state(daemon)
            if state != shown[0]:
                shown[0] = state
                notifier.status(state)

    daemon.bus.subscribe(on_event)
    reloader = Reloader(daemon, config_source, notifier)

    def on_hup(signum: int, frame: FrameType | None) -> None:
        reloader.request()

    def on_abort(signum: int, frame: FrameType | None) -> None:
        daemon.rig.switch.off()  # first: the watchdog thinks we are hung
        # Then what faulthandler would have written had this handler not replaced its
        # own: every thread's Python stack, to stderr (the journal), one line each.
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        signal.signal(signal.SIGABRT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGABRT)

    daemon.add_ready_callback(lambda: notifier.ready(describe_state(daemon)))
    daemon.add_ready_callback(reloader.start)
    daemon.add_stop_callback(lambda: notifier.stopping("stopping: power off"))
    daemon.add_signal(signal.SIGHUP, on_hup)
    daemon.add_signal(signal.SIGABRT, on_abort)
    daemon.add_closer(notifier.close)
    return reloader
