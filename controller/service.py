"""The daemon as a systemd service: notify, watchdog, status, reload, fail-safe signals.

* ``READY=1`` only once the config is valid, the hardware is built and the power
  pin has been read back as off (the :class:`~controller.daemon.Daemon` constructor
  guarantees all three, so readiness is announced from its ``run``).
* ``WATCHDOG=1`` comes from the control-loop thread itself, after a tick, and only
  while ticks are fresh: a stalled loop stops the pings and systemd aborts us.
* ``STATUS=`` follows the state: idle, armed: REGION, tripped: REASON.
* SIGHUP reloads in a worker thread (YAML parsing must not delay ticks): an invalid
  file keeps the running config; tighter limits apply at once; looser ones wait
  until no region is armed; hardware changes need a restart.
* SIGABRT (systemd's watchdog abort) cuts power before the process dies.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from controller import configfile, events
from controller.config import GunguardConfig
from controller.configfile import ConfigError
from controller.daemon import Daemon
from controller.events import Event
from controller.reload import LOOSER, RESTART, SAME, compare
from controller.sdnotify import Notifier, WatchdogGate

log = logging.getLogger(__name__)


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
    """Re-reads the config on request, in its own thread; applies only what is safe."""

    def __init__(self, daemon: Daemon, config_source: str, notifier: Notifier) -> None:
        self._daemon = daemon
        self._source = config_source
        self._notifier = notifier
        self._wake = threading.Event()
        #: A looser config waiting for the region to be disarmed. Handed over by an
        #: atomic swap, never under a lock of ours: the hand-over runs inside a
        #: supervisor event, under the supervisor's lock, and a second lock there
        #: would invert the lock order with a reload thread that calls configure().
        self._pending: GunguardConfig | None = None
        self.results: list[str] = []  # what each reload did (tests, status)
        daemon.bus.subscribe(self._on_event)
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

    def _reload(self) -> str:
        try:
            new = configfile.load(self._source)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload rejected, keeping the running config: %s", problem)
            return "rejected: invalid config"
        daemon = self._daemon
        plan = compare(daemon.cfg, new)
        if plan.kind == SAME:
            log.info("reload: config unchanged")
            return "unchanged"
        if plan.kind == RESTART:
            for reason in plan.reasons:
                log.error("reload rejected, keeping the running config: %s", reason)
            return "rejected: needs restart"
        if plan.kind == LOOSER and daemon.supervisor.region is not None:
            # Deselected meanwhile? Then it waits for the next disarm: later, never looser.
            self._pending = new
            for reason in plan.reasons:
                log.warning("reload: looser limit deferred until no region is armed: %s", reason)
            return "deferred: looser while armed"
        self._pending = None
        self._apply(new, plan.kind)
        return f"applied: {plan.kind}"

    def _apply(self, new: GunguardConfig, kind: str) -> None:
        self._daemon.cfg = new
        self._daemon.supervisor.configure(new)
        log.warning("reload: %s config applied (hash %s)", kind, configfile.config_hash(new))

    def _on_event(self, event: Event) -> None:
        if event.kind == events.REGION and event.fields.get("region") is None:
            pending, self._pending = self._pending, None
            if pending is not None:
                self._apply(pending, LOOSER)


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
        signal.signal(signal.SIGABRT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGABRT)

    daemon.add_ready_callback(lambda: notifier.ready(describe_state(daemon)))
    daemon.add_ready_callback(reloader.start)
    daemon.add_stop_callback(lambda: notifier.stopping("stopping: power off"))
    daemon.add_signal(signal.SIGHUP, on_hup)
    daemon.add_signal(signal.SIGABRT, on_abort)
    daemon.add_closer(notifier.close)
    return reloader
