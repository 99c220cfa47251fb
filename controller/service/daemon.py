"""``gunguard run``: the daemon. Builds everything from the config and runs the loop.

Order matters and is the safety argument of start-up: the motor switch is created
(off) before any other hardware; the supervisor starts with power off and no region;
the loop runs in the main thread so signals are handled between ticks; every exit
path (return, signal, exception) passes through ``finally`` blocks that cut power
before the pins are released. Event listeners run on the dispatcher thread
(:mod:`gunguard.service.dispatcher`), never on the loop's or the tach edge's.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from gunguard.assembly.build import Assembly, SensorTap, assemble
from gunguard.assembly.rig import Rig, build_rig
from gunguard.config.schema import GunguardConfig, SerialConfig
from gunguard.core.book import TreatmentBook
from gunguard.core.clock import RealClock
from gunguard.core.events import EventBus
from gunguard.core.loop import RealtimeLoop
from gunguard.hardware.pins import make_pin_factory
from gunguard.link.serial_link import LinkEndpoint, SerialTransport
from gunguard.service.dispatcher import EventDispatcher
from gunguard.service.watchdog import LoopWatchdog
from gunguard.sim.firmware import PtyFirmware, SimFirmwareEndpoint
from gunguard.sim.gun import simulated_rig
from gunguard.sim.realtime import SimGunDriver

log = logging.getLogger(__name__)

#: At exit, how long the port stays open for the firmware to confirm STOP(shutdown)
#: (docs/serial-protocol.md, §8.5): two of its 100 ms STATUS periods and a resend.
SHUTDOWN_CONFIRM_S = 0.5


class Daemon:
    """Everything ``gunguard run`` owns, with a start-up order that keeps power off."""

    def __init__(
        self,
        cfg: GunguardConfig,
        *,
        simulated_gun: bool = False,
        simulated_firmware: bool = False,
        book: Callable[[], TreatmentBook] | TreatmentBook | None = None,
        tap: SensorTap | None = None,
    ) -> None:
        """``book`` may be a factory: it is then called once the hardware is up (power
        off), so a failed start-up leaves no state behind. ``tap`` sees the sensors
        on their way into the supervisor (``--record``).

        With ``simulated_gun`` and a ``serial:`` section, the link goes to
        ``serial.port`` and the simulated motor follows what that firmware reports
        (hardware in the loop), unless ``simulated_firmware`` puts the built-in
        simulated firmware on a pty instead."""
        if simulated_firmware and not simulated_gun:
            raise ValueError("the simulated firmware needs the simulated gun")
        self.cfg = cfg
        self.clock = RealClock()
        self.bus = EventBus()
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closers: list[Callable[[], None]] = []
        self._ready_callbacks: list[Callable[[], object]] = []
        self._stop_callbacks: list[Callable[[], object]] = []
        self._signals: dict[int, Callable[[int, FrameType | None], None]] = {}
        self.sim_gun_driver: SimGunDriver | None = None
        self.pty_firmware: PtyFirmware | None = None
        self.transport: SerialTransport | None = None
        if simulated_gun:
            rig, gun = simulated_rig(cfg.hardware, self.clock)
            self.sim_gun_driver = SimGunDriver(gun, self.clock, self.stop_event)
        else:
            factory = make_pin_factory(cfg.hardware.pin_factory, self.clock)
            rig = build_rig(cfg.hardware, factory)
        self.rig: Rig = rig
        try:
            if callable(book):
                book = book()
            link = None
            if cfg.serial is not None:
                link = self._open_firmware_link(cfg.serial, simulated_firmware)
            self.assembly: Assembly = assemble(
                cfg, self.clock, rig, book=book, link=link, bus=self.bus, tap=tap
            )
            self.supervisor = self.assembly.supervisor
            self.guard = self.assembly.guard
            assert self.assembly.runner is not None
            self.runner = self.assembly.runner
            self.loop = RealtimeLoop(self.supervisor, self.clock, cfg.loop.rate_hz)
            self.watchdog = LoopWatchdog(
                self.supervisor, self.clock, cfg.loop.max_loop_gap_ms / 1000.0
            )
            self.dispatcher = EventDispatcher(self.bus)
        except BaseException:
            self._close_quietly()
            raise
        if not self.rig.switch.pin_is_inactive():
            self._close_quietly()
            raise RuntimeError("the motor power pin does not read back as off after start-up")

    def _close_quietly(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                log.exception("error while abandoning the start-up: %r", closer)
        self.rig.close()

    def _open_firmware_link(
        self, serial: SerialConfig, simulated_firmware: bool
    ) -> SerialTransport:
        """The UART to the gun's firmware: ``serial.port``, or the simulated firmware on
        a pty. With the simulated gun and a real port, the motor follows that port."""
        port = serial.port
        driver = self.sim_gun_driver
        if simulated_firmware:
            assert driver is not None
            self.pty_firmware = PtyFirmware(SimFirmwareEndpoint()).start()
            self.add_closer(self.pty_firmware.close)
            port = self.pty_firmware.port
            driver.firmware = self.pty_firmware
        endpoint = LinkEndpoint(
            heartbeat_ms=serial.heartbeat_ms, heartbeat_timeout_ms=serial.heartbeat_timeout_ms
        )
        self.transport = SerialTransport(endpoint, port, baudrate=serial.baudrate, clock=self.clock)
        if driver is not None and not simulated_firmware:
            driver.follow = self.transport
            log.info("hardware in the loop: the simulated motor follows the firmware on %s", port)
        self._ready_callbacks.insert(0, self.transport.start)
        self.add_closer(self._close_link)
        return self.transport

    def _describe_link(self) -> dict[str, Any]:
        """The firmware link for the status payload (the control socket's thread)."""
        assert self.transport is not None
        return self.transport.describe(self.clock.monotonic())

    def _close_link(self) -> None:
        """Closes the port only once the firmware confirmed STOP(shutdown), or after
        :data:`SHUTDOWN_CONFIRM_S` (the GPIO cut came first and never waits for this)."""
        transport = self.transport
        assert transport is not None
        if transport.confirm_stop(SHUTDOWN_CONFIRM_S):
            log.info("gun firmware confirmed STOP(shutdown)")
        else:
            state = transport.state(self.clock.monotonic())
            log.log(
                logging.INFO if state == "down" else logging.WARNING,
                "gun firmware did not confirm STOP(shutdown) within %.1f s (link %s); "
                "closing the port anyway",
                SHUTDOWN_CONFIRM_S,
                state,
            )
        transport.close()

    def add_thread(self, thread: threading.Thread) -> None:
        self._threads.append(thread)

    def add_closer(self, closer: Callable[[], None]) -> None:
        """Run ``closer`` on exit, after power is off, before the pins are released."""
        self._closers.append(closer)

    def add_ready_callback(self, callback: Callable[[], object]) -> None:
        """Run once everything is up, power is verified off, just before the loop starts."""
        self._ready_callbacks.append(callback)

    def add_stop_callback(self, callback: Callable[[], object]) -> None:
        """Run when a stop is requested (signal or request_stop), before power-down."""
        self._stop_callbacks.append(callback)

    def add_signal(self, signum: int, handler: Callable[[int, FrameType | None], None]) -> None:
        """Install ``handler`` for ``signum`` while the daemon runs."""
        self._signals[signum] = handler

    def serve_operator(self, socket_path: Path | None) -> None:
        """Open the control socket (None: none) and the physical controls, if configured.

        Both claim their resources now, so a socket in use or a pin conflict stops the
        start-up (power off, pins released, then the error), but serve only from
        :meth:`run` on, once the loop is about to tick.
        """
        from gunguard.operator.controls import PhysicalControls
        from gunguard.operator.server import ControlServer

        closers: list[Callable[[], None]] = []
        try:
            if socket_path is not None:
                server = ControlServer(
                    self.supervisor,
                    socket_path,
                    self.clock,
                    link=self._describe_link if self.transport is not None else None,
                    runner=self.runner,
                )
                closers.append(server.close)
                server.open()
                self.add_thread(server.thread)
            if self.cfg.controls is not None:
                controls = PhysicalControls(self.supervisor, self.cfg.controls, self.rig.factory)
                closers.append(controls.close)
                self.add_thread(controls.thread)
        except BaseException:
            self.supervisor.close()
            for closer in reversed(closers):
                try:
                    closer()
                except Exception:
                    log.exception("error while abandoning the start-up: %r", closer)
            self._close_quietly()
            raise
        for closer in closers:
            self.add_closer(closer)

    def request_stop(self, *_: Any) -> None:
        if not self.stop_event.is_set():
            for callback in self._stop_callbacks:
                try:
                    callback()
                except Exception:
                    log.exception("stop callback %r failed", callback)
        self.stop_event.set()

    def run(self) -> None:
        """Run until SIGTERM/SIGINT or :meth:`request_stop`. Power is off on return."""
        handlers: dict[int, Any] = {signal.SIGTERM: self._on_signal, signal.SIGINT: self._on_signal}
        handlers.update(self._signals)
        previous = {sig: signal.getsignal(sig) for sig in handlers}
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        try:
            self.dispatcher.start()
            if self.sim_gun_driver is not None:
                self.add_thread(self.sim_gun_driver)
            for callback in self._ready_callbacks:
                callback()
            # The gap clock and its watchdog run before anything (socket, buttons, the
            # simulated gun) can arm a region; the loop's first tick follows at once.
            self.supervisor.loop_starting()
            self.watchdog.start()
            for thread in self._threads:
                thread.start()
            log.info("gunguard running: loop %g Hz, power off, no region", self.cfg.loop.rate_hz)
            self.loop.run(self.stop_event)
        finally:
            self.supervisor.close()
            self.runner.close()  # the guided session's step, stored before the ledger closes
            self.stop_event.set()
            self.watchdog.stop()
            # Every event up to "power off" reaches its listeners (the ledger records a
            # last trip) before the closers run; later events are delivered inline.
            self.dispatcher.stop()
            if self.guard is not None:
                self.guard.shutdown()  # STOP(shutdown): confirmed before the port closes
            for closer in reversed(self._closers):
                try:
                    closer()
                except Exception:
                    log.exception("error while shutting down %r", closer)
            self.rig.close()
            for sig, handler in previous.items():
                # None: a handler not installed from Python (faulthandler's SIGABRT);
                # leave ours in place rather than fail here (it only cuts power again).
                if handler is not None:
                    signal.signal(sig, handler)
            log.info("gunguard stopped: power off")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning("received %s: stopping", signal.Signals(signum).name)
        self.request_stop()
