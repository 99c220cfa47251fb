"""``gunguard run``: the daemon. Builds everything from the config and runs the loop.

Order matters and is the safety argument of start-up: the motor switch is created
(off) before any other hardware; the supervisor starts with power off and no region;
the loop runs in the main thread so signals are handled between ticks; every exit
path (return, signal, exception) passes through ``finally`` blocks that cut power
before the pins are released.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from controller import eventfmt
from controller.book import TreatmentBook
from controller.clock import RealClock
from controller.config import GunguardConfig, SerialConfig
from controller.events import Event, EventBus
from controller.firmware import FirmwareGuard
from controller.loop import LoopWatchdog, RealtimeLoop
from controller.scenario import Scenario, apply_step
from controller.serial_link import LinkEndpoint, SerialTransport
from controller.supervisor import Supervisor
from hardware.rig import Rig, build_rig
from hardware.sim_firmware import PtyFirmware, SimFirmwareEndpoint, apply_firmware_step
from hardware.simgun import SimulatedGun

log = logging.getLogger(__name__)

SIM_GUN_PERIOD_S = 0.0005


class SimGunDriver(threading.Thread):
    """Moves the simulated gun through real time (its edges reach gpiozero callbacks).

    With a simulated firmware on a pty, it also couples the two the way the real gun
    is coupled: the motor runs only when the firmware drives it, within its cap, and
    the firmware reports the motor's true rate unless a scenario makes it lie.
    """

    def __init__(
        self,
        gun: SimulatedGun,
        clock: RealClock,
        stop: threading.Event,
        firmware: PtyFirmware | None = None,
    ) -> None:
        super().__init__(name="gunguard-sim-gun", daemon=True)
        self._gun = gun
        self._clock = clock
        self._stop = stop
        self._firmware = firmware
        self.reported_ppm_override: float | None = None

    def set_reported_ppm(self, ppm: float | None) -> None:
        """The firmware reports ``ppm`` instead of the truth (None: the truth again)."""
        self.reported_ppm_override = ppm

    def run(self) -> None:
        gun, firmware = self._gun, self._firmware
        while not self._stop.is_set():
            if firmware is not None:
                with firmware.lock:
                    sim = firmware.sim
                    gun.firmware_motor_on = sim.motor_on
                    gun.firmware_cap_ppm = sim.cap_ppm
                    override = self.reported_ppm_override
                    sim.reported_ppm = round(gun.rate_ppm if override is None else override)
            gun.advance(self._clock.monotonic())
            time.sleep(SIM_GUN_PERIOD_S)


class LiveOperator:
    """Plays a scenario's steps against the live daemon (the real-time demo)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def select(self, region: str | None) -> None:
        self._daemon.supervisor.select_region(region)

    def reset(self) -> None:
        self._daemon.supervisor.reset()

    def gun(self, ppm: float | None = None, force_n: float | None = None) -> None:
        assert self._daemon.rig.gun is not None
        self._daemon.rig.gun.set(ppm=ppm, force_n=force_n)

    def fault(self, **faults: Any) -> None:
        stall = faults.pop("loop_stall_ms", None)
        assert self._daemon.rig.gun is not None
        self._daemon.rig.gun.inject(now=time.monotonic(), **faults)
        if stall is not None:
            self._daemon.loop.stall(stall)

    def restart(self) -> None:
        raise ValueError("restart steps only run in `gunguard simulate` (virtual time)")

    def step_wall(self, seconds: float) -> None:
        raise ValueError("wall_clock steps only run in `gunguard simulate` (virtual time)")

    def firmware_step(self, link: Any, firmware: Any) -> None:
        pty = self._daemon.pty_firmware
        driver = self._daemon.sim_gun_driver
        if pty is None or driver is None:
            raise ValueError("link/firmware steps need a serial: section in the config")
        if link is not None and link.state == "unplugged":
            pty.unplug()
        with pty.lock:
            sim = pty.sim
            if link is not None and link.state != "unplugged":
                sim.link_mode = link.state
            if firmware is not None:
                apply_firmware_step(sim, firmware, driver.set_reported_ppm)


class Daemon:
    """Everything ``gunguard run`` owns, with a start-up order that keeps power off."""

    def __init__(
        self,
        cfg: GunguardConfig,
        *,
        simulated_gun: bool = False,
        book: TreatmentBook | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = RealClock()
        self.bus = EventBus()
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closers: list[Callable[[], None]] = []
        self._ready_callbacks: list[Callable[[], object]] = []
        self._stop_callbacks: list[Callable[[], object]] = []
        self._signals: dict[int, Callable[[int, FrameType | None], None]] = {}
        self.rig: Rig = build_rig(cfg, self.clock, simulated_gun=simulated_gun)
        self.pty_firmware: PtyFirmware | None = None
        self.sim_gun_driver: SimGunDriver | None = None
        self.transport: SerialTransport | None = None
        try:
            self.supervisor = Supervisor(
                cfg,
                self.clock,
                force=self.rig.force,
                switch=self.rig.switch,
                bus=self.bus,
                book=book,
            )
            self.rig.tachometer.connect(self.supervisor.on_tach_edge)
            self.loop = RealtimeLoop(self.supervisor, self.clock, cfg.loop.rate_hz)
            self.watchdog = LoopWatchdog(
                self.supervisor, self.clock, cfg.loop.max_loop_gap_ms / 1000.0
            )
            if cfg.serial is not None:
                self._attach_firmware_link(cfg.serial, simulated_gun)
        except BaseException:
            self.rig.close()
            raise
        if not self.rig.switch.pin_is_inactive():
            self.rig.close()
            raise RuntimeError("the motor power pin does not read back as off after start-up")

    def _attach_firmware_link(self, serial: SerialConfig, simulated_gun: bool) -> None:
        """The UART to the gun's firmware; with the simulated gun, its firmware on a pty."""
        port = serial.port
        if simulated_gun:
            self.pty_firmware = PtyFirmware(SimFirmwareEndpoint()).start()
            self.add_closer(self.pty_firmware.close)
            port = self.pty_firmware.port
        endpoint = LinkEndpoint(
            heartbeat_ms=serial.heartbeat_ms, heartbeat_timeout_ms=serial.heartbeat_timeout_ms
        )
        self.transport = SerialTransport(endpoint, port, baudrate=serial.baudrate, clock=self.clock)
        self.guard = FirmwareGuard(self.supervisor, self.transport, serial, self.clock)
        self._ready_callbacks.insert(0, self.transport.start)
        self.add_closer(self.transport.close)

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
        from controller.control_socket import ControlServer
        from hardware.controls import PhysicalControls

        closers: list[Callable[[], None]] = []
        try:
            if socket_path is not None:
                server = ControlServer(self.supervisor, socket_path, self.clock)
                closers.append(server.close)
                server.open()
                self.add_thread(server.thread)
            if self.cfg.controls is not None:
                controls = PhysicalControls(self.supervisor, self.cfg.controls, self.rig.factory)
                closers.append(controls.close)
                self.add_thread(controls.thread)
        except BaseException:
            self.supervisor.close()
            for closer in reversed(self._closers + closers):  # the start-up is over
                try:
                    closer()
                except Exception:
                    log.exception("error while abandoning the start-up: %r", closer)
            self.rig.close()
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
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            if self.rig.gun is not None:
                self.sim_gun_driver = SimGunDriver(
                    self.rig.gun, self.clock, self.stop_event, self.pty_firmware
                )
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
            self.stop_event.set()
            self.watchdog.stop()
            for closer in reversed(self._closers):
                try:
                    closer()
                except Exception:
                    log.exception("error while shutting down %r", closer)
            self.rig.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            log.info("gunguard stopped: power off")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning("received %s: stopping", signal.Signals(signum).name)
        self.request_stop()


def play_live(daemon: Daemon, scenario: Scenario, *, then_stop: bool = True) -> threading.Thread:
    """A thread that plays ``scenario``'s steps in real time against ``daemon``."""
    operator = LiveOperator(daemon)

    def player() -> None:
        start = time.monotonic()
        try:
            for step in sorted(scenario.steps, key=lambda s: s.at):
                if daemon.stop_event.wait(max(0.0, start + step.at - time.monotonic())):
                    return
                apply_step(operator, step)  # type: ignore[arg-type]
            daemon.stop_event.wait(max(0.0, start + scenario.duration - time.monotonic()))
        except Exception:
            log.exception("scenario step failed")
        if then_stop:
            daemon.request_stop()

    return threading.Thread(target=player, name="gunguard-scenario", daemon=True)


def print_events_live(bus: EventBus, *, as_json: bool, since: float) -> None:
    """Print each event as it happens, timed from ``since`` (the daemon's start)."""
    fmt = eventfmt.json_line if as_json else eventfmt.human

    def show(event: Event) -> None:
        print(fmt(Event(event.t - since, event.kind, event.fields)), flush=True)

    bus.subscribe(show)


def scenario_path_base(path: Path) -> Path:
    return path.resolve().parent
