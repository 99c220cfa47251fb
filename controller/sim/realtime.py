"""The simulated gun in real time, for ``gunguard run --sim-gun SCENARIO`` and ``make demo``.

:class:`SimGunDriver` moves the simulated gun through real time on its own thread, so
its tach edges reach the daemon through gpiozero's callbacks like a real sensor's.
:class:`LiveActions` plays a scenario's steps against the running daemon (the same
:class:`~gunguard.sim.actions.Actions` as the bench), and :func:`play_live` runs a
scenario on a thread in real time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gunguard.core.clock import Clock
from gunguard.core.events import Event, EventBus
from gunguard.core.loop import RealtimeLoop
from gunguard.core.plugins import Reset, Select
from gunguard.core.supervisor import Supervisor
from gunguard.link.serial_link import FirmwareStatus
from gunguard.operator import eventfmt
from gunguard.plan.runner import SessionRunner
from gunguard.sim.actions import NotInRealTime, check_faults
from gunguard.sim.firmware import PtyFirmware, apply_firmware_step
from gunguard.sim.gun import SimulatedGun
from gunguard.sim.scenario import Scenario, apply_step

log = logging.getLogger(__name__)

SIM_GUN_PERIOD_S = 0.0005
#: Hardware in the loop: how often the motor reads the firmware's latest STATUS (which
#: comes every 100 ms; reading it takes the serial transport's lock).
FOLLOW_PERIOD_S = 0.005


class FollowedLink(Protocol):
    """What the simulated motor reads of the link to a real firmware (a SerialTransport)."""

    @property
    def latest_status(self) -> FirmwareStatus | None: ...

    def state(self, now: float) -> str: ...


class SimGunDriver(threading.Thread):
    """Moves the simulated gun through real time (its edges reach gpiozero callbacks).

    With a simulated firmware on a pty, it also couples the two the way the real gun
    is coupled: the motor runs only when the firmware drives it, within its cap, and
    the firmware reports the motor's true rate unless a scenario makes it lie.

    With :attr:`follow` (hardware in the loop: the firmware is a real board, or any
    peer, on ``serial.port``) the motor instead does what that firmware's STATUS says:
    it turns at ``reported_ppm`` while ``motor_on`` and gunguard's power is on, and
    stands still otherwise (also while the link is not ``ok``).
    """

    def __init__(
        self,
        gun: SimulatedGun,
        clock: Clock,
        stop: threading.Event,
        firmware: PtyFirmware | None = None,
        follow: FollowedLink | None = None,
    ) -> None:
        super().__init__(name="gunguard-sim-gun", daemon=True)
        self.gun = gun
        self._clock = clock
        self._stopping = stop
        self.firmware = firmware
        self.follow = follow
        self.reported_ppm_override: float | None = None

    def set_reported_ppm(self, ppm: float | None) -> None:
        """The firmware reports ``ppm`` instead of the truth (None: the truth again)."""
        self.reported_ppm_override = ppm

    def run(self) -> None:
        gun, firmware, follow = self.gun, self.firmware, self.follow
        next_follow = 0.0
        while not self._stopping.is_set():
            now = self._clock.monotonic()
            if firmware is not None:
                with firmware.lock:
                    sim = firmware.sim
                    gun.firmware_motor_on = sim.motor_on
                    gun.firmware_cap_ppm = sim.cap_ppm
                    override = self.reported_ppm_override
                    sim.reported_ppm = round(gun.rate_ppm if override is None else override)
            elif follow is not None and now >= next_follow:
                next_follow = now + FOLLOW_PERIOD_S
                self._follow(follow, now)
            gun.advance(now)
            time.sleep(SIM_GUN_PERIOD_S)

    def _follow(self, link: FollowedLink, now: float) -> None:
        """The motor does what the firmware's latest STATUS says (hardware in the loop)."""
        latest = link.latest_status
        running = latest is not None and link.state(now) == "ok" and latest.status.motor_on
        self.gun.firmware_motor_on = running
        self.gun.firmware_ppm = float(latest.status.reported_ppm) if running and latest else 0.0


class LiveDaemon(Protocol):
    """What :class:`LiveActions` needs of the running daemon."""

    supervisor: Supervisor
    runner: SessionRunner
    loop: RealtimeLoop
    stop_event: threading.Event

    def request_stop(self) -> None: ...


class LiveActions:
    """Plays a scenario's steps against the live daemon (the real-time demo).

    The operator's steps go to the supervisor as intents, like the buttons' and the
    socket's would (applied at its next tick).
    """

    def __init__(self, daemon: LiveDaemon, driver: SimGunDriver) -> None:
        self._daemon = daemon
        self._driver = driver

    def select(self, region: str | None) -> None:
        self._daemon.supervisor.post_intent(Select(region, "scenario"))

    def reset(self) -> None:
        self._daemon.supervisor.post_intent(Reset("scenario"))

    def gun(self, ppm: float | None = None, force_n: float | None = None) -> None:
        self._driver.gun.set(ppm=ppm, force_n=force_n)

    def tach_periods(
        self, periods_ms: Sequence[float], *, repeat: bool = True, per: str = "pulse"
    ) -> None:
        """In real time the edges come from the driver thread: within about 1 ms of
        their times, never burst when it wakes late (exact only in virtual time)."""
        self._driver.gun.tach_periods(periods_ms, repeat=repeat, per=per)

    def force_samples(
        self, samples_n: Sequence[float], sample_ms: float, *, repeat: bool = True
    ) -> None:
        self._driver.gun.force_samples(samples_n, sample_ms, repeat=repeat)

    def force_pattern(
        self,
        high_n: float,
        low_n: float,
        period_ms: float,
        *,
        duty: float | None = None,
        high_ms: float | None = None,
    ) -> None:
        self._driver.gun.force_pattern(high_n, low_n, period_ms, duty=duty, high_ms=high_ms)

    def fault(
        self,
        *,
        force: str | None = None,
        tach: str | None = None,
        power_switch: str | None = None,
        loop_stall_ms: float | None = None,
    ) -> None:
        check_faults(force=force, tach=tach, power_switch=power_switch)
        self._driver.gun.inject(
            force=force, tach=tach, power_switch=power_switch, now=time.monotonic()
        )
        if loop_stall_ms is not None:
            self._daemon.loop.stall(loop_stall_ms)

    def session(self, action: str) -> object:
        runner = self._daemon.runner
        if action == "start":
            return runner.start("scenario")
        if action == "next":
            return runner.next("scenario")
        runner.stop("scenario")
        return None

    def pain(self, value: int, when: str | None = None) -> object:
        return self._daemon.runner.pain(value, when, "scenario")

    def announce(self, kind: str, **fields: Any) -> None:
        self._daemon.supervisor.announce(kind, **fields)

    def restart(self) -> None:
        raise NotInRealTime("restart steps only run in `gunguard simulate` (virtual time)")

    def reboot(self) -> None:
        raise NotInRealTime("reboot steps only run in `gunguard simulate` (virtual time)")

    def step_wall(self, seconds: float) -> None:
        raise NotInRealTime("wall_clock steps only run in `gunguard simulate` (virtual time)")

    def firmware_step(self, link: Any, firmware: Any) -> None:
        pty = self._driver.firmware
        if pty is None:
            raise ValueError(
                "link/firmware steps need the built-in simulated firmware (--sim-firmware)"
            )
        if link is not None and link.state == "unplugged":
            pty.unplug()
        with pty.lock:
            sim = pty.sim
            if link is not None and link.state != "unplugged":
                sim.link_mode = link.state
            if firmware is not None:
                apply_firmware_step(sim, firmware, self._driver.set_reported_ppm)


class ScenarioPlayer(threading.Thread):
    """Plays a scenario's steps in real time against the daemon, then stops it.

    ``started_at`` (monotonic) is the scenario's time zero, so its ``expect:`` windows
    can be judged on the events; ``completed`` says whether it ran to its end.
    """

    def __init__(
        self, daemon: LiveDaemon, driver: SimGunDriver, scenario: Scenario, then_stop: bool
    ) -> None:
        super().__init__(name="gunguard-scenario", daemon=True)
        self._daemon = daemon
        self._actions = LiveActions(daemon, driver)
        self.scenario = scenario
        self._then_stop = then_stop
        self.started_at: float | None = None
        self.completed = False

    def run(self) -> None:
        daemon, scenario = self._daemon, self.scenario
        start = self.started_at = time.monotonic()
        try:
            for step in sorted(scenario.steps, key=lambda s: s.at):
                if daemon.stop_event.wait(max(0.0, start + step.at - time.monotonic())):
                    return
                apply_step(self._actions, step)
            end = start + scenario.duration
            self.completed = not daemon.stop_event.wait(max(0.0, end - time.monotonic()))
        except Exception:
            log.exception("scenario step failed")
        if self._then_stop:
            daemon.request_stop()

    def reached(self, now: float) -> float:
        """Seconds of the scenario played by ``now``."""
        if self.completed:
            return self.scenario.duration
        return 0.0 if self.started_at is None else now - self.started_at


def play_live(
    daemon: LiveDaemon, driver: SimGunDriver, scenario: Scenario, *, then_stop: bool = True
) -> ScenarioPlayer:
    """A thread that plays ``scenario``'s steps in real time against ``daemon``."""
    return ScenarioPlayer(daemon, driver, scenario, then_stop)


def print_events_live(bus: EventBus, *, as_json: bool, since: float) -> Callable[[], None]:
    """Print each event as it happens, timed from ``since`` (the daemon's start).

    A listener: it runs on the event dispatcher, so a slow pipe never stalls the loop.
    """
    fmt = eventfmt.json_line if as_json else eventfmt.human

    def show(event: Event) -> None:
        print(fmt(Event(event.t - since, event.kind, event.fields)), flush=True)

    return bus.subscribe(show)
