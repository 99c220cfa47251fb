"""The one assembly: supervisor, drivers, treatment book, firmware link and plug-ins.

``gunguard run`` (:mod:`gunguard.service.daemon`) and the virtual-time bench
(:mod:`gunguard.sim.bench`) both call :func:`assemble`; only what they hand in differs:
the clock, the rig (real pins, or mock pins with a simulated gun behind them), the
book (SQLite or in memory) and the link (a serial port, or a simulated UART).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from gunguard.assembly.rig import Rig
from gunguard.config.loader import config_hash
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core.book import TreatmentBook
from gunguard.core.clock import Clock
from gunguard.core.events import EventBus
from gunguard.core.ports import ForceInput
from gunguard.core.reasons import TripReason
from gunguard.core.supervisor import Supervisor
from gunguard.hardware.tachometer import EdgeHandler
from gunguard.link.guard import FirmwareGuard, Link
from gunguard.operator.controls import PhysicalControls
from gunguard.plan.runner import SessionRunner
from gunguard.store.ledger import Ledger
from gunguard.store.plans import PlanBook

log = logging.getLogger(__name__)


class SensorTap(Protocol):
    """Sees the sensors where they enter the supervisor (``gunguard run --record``).

    Each method wraps what the supervisor would get and returns the wrapper, which
    must pass every edge and return every reading unchanged, and never block: the
    edge thread and the control loop call it.
    """

    def edges(self, handler: EdgeHandler) -> EdgeHandler: ...

    def force(self, sensor: ForceInput) -> ForceInput: ...


@dataclass
class Assembly:
    """Everything that supervises one gun, wired."""

    cfg: GunguardConfig
    clock: Clock
    rig: Rig
    bus: EventBus
    supervisor: Supervisor
    guard: FirmwareGuard | None = None
    controls: PhysicalControls | None = None
    runner: SessionRunner | None = None

    def close(self) -> None:
        """Record the guided session's step, power off, stop the controls, release the
        pins. Idempotent."""
        if self.runner is not None:
            self.runner.close()
        self.supervisor.close()
        if self.controls is not None:
            self.controls.close()
        self.rig.close()


def assemble(
    cfg: GunguardConfig,
    clock: Clock,
    rig: Rig,
    *,
    book: TreatmentBook | None = None,
    link: Link | None = None,
    bus: EventBus | None = None,
    controls: bool = False,
    tap: SensorTap | None = None,
    plans: PlanBook | None = None,
    config_name: str = "the running config",
) -> Assembly:
    """Wire a supervisor for ``cfg`` onto ``rig``.

    ``link`` is used only when the config has a ``serial:`` section; ``controls``
    builds the physical button, buzzer and LED of a ``controls:`` section (the
    daemon: their thread starts with it). ``tap`` sees every tach edge and force
    reading on their way in (a recording). The guided sessions' runner keeps its
    records in the ledger's store (``plans``: a book of its own, for an in-memory
    history); ``config_name`` names the config in what it says. If anything fails,
    power is off and the pins are released before the error propagates.
    """
    bus = bus or EventBus()
    try:
        supervisor = Supervisor(
            resolve_limits(cfg),
            clock,
            force=rig.force if tap is None else tap.force(rig.force),
            switch=rig.switch,
            bus=bus,
            book=book,
            config_tag=config_hash(cfg),
        )
        on_edge = supervisor.on_tach_edge
        rig.tachometer.connect(on_edge if tap is None else tap.edges(on_edge))
        if isinstance(book, Ledger):
            wire_ledger(book, supervisor)
        guard = None
        if cfg.serial is not None and link is not None:
            guard = FirmwareGuard(supervisor, link, cfg.serial, clock)
        physical = None
        if controls and cfg.controls is not None:
            physical = PhysicalControls(supervisor, cfg.controls, rig.factory)
        if isinstance(book, Ledger):
            plans = PlanBook.on_ledger(book)
        runner = SessionRunner(
            supervisor,
            plans if plans is not None else PlanBook(),
            cfg,
            clock,
            config_name=config_name,
            daemon_session=(book.session or None) if isinstance(book, Ledger) else None,
        )
    except BaseException:
        rig.close()
        raise
    return Assembly(cfg, clock, rig, bus, supervisor, guard, physical, runner)


def wire_ledger(ledger: Ledger, supervisor: Supervisor) -> None:
    """A write failure trips ``storage_fault``; telemetry and reloads follow the supervisor."""
    ledger.set_fault_handler(lambda detail: supervisor.trip(TripReason.STORAGE_FAULT, detail))
    ledger.set_probe(
        lambda: (supervisor.rate_ppm, supervisor.force_n, supervisor.power_on, supervisor.counting)
    )
    ledger.follow_limits(lambda: (supervisor.limits, supervisor.config_tag))
