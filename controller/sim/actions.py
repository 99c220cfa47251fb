"""What a scenario can do, as one interface for virtual and real time.

The virtual-time :class:`~gunguard.sim.bench.Bench` and the live daemon's
:class:`~gunguard.sim.realtime.LiveActions` both implement :class:`Actions`, and
:func:`gunguard.sim.scenario.apply_step` plays a step through it, so a scenario means
the same thing in ``gunguard simulate`` and in ``gunguard run --sim-gun``. Steps that
only make sense in virtual time (a restart, a reboot, a wall-clock step) raise
:class:`NotInRealTime` live.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

#: What each ``fault:`` key can inject into the simulated gun.
FORCE_FAULTS = ("none", "open", "short", "frozen")
TACH_FAULTS = ("none", "noise", "disconnected")
SWITCH_FAULTS = ("none", "stuck_on")


class NotInRealTime(ValueError):
    """A step that only runs in ``gunguard simulate`` (virtual time)."""


def check_faults(
    *, force: str | None = None, tach: str | None = None, power_switch: str | None = None
) -> None:
    """The one validation of injected fault names, for the bench and the live daemon."""
    for name, value, allowed in (
        ("force", force, FORCE_FAULTS),
        ("tach", tach, TACH_FAULTS),
        ("power_switch", power_switch, SWITCH_FAULTS),
    ):
        if value is not None and value not in allowed:
            raise ValueError(f"fault {name}: {value!r} is not one of {', '.join(allowed)}")


class Actions(Protocol):
    """The operator, the person holding the gun, and the fault injector of a scenario."""

    def select(self, region: str | None) -> object: ...

    def reset(self) -> object: ...

    def gun(self, ppm: float | None = None, force_n: float | None = None) -> None: ...

    def tach_periods(
        self, periods_ms: Sequence[float], *, repeat: bool = True, per: str = "pulse"
    ) -> None: ...

    def force_samples(
        self, samples_n: Sequence[float], sample_ms: float, *, repeat: bool = True
    ) -> None: ...

    def force_pattern(
        self,
        high_n: float,
        low_n: float,
        period_ms: float,
        *,
        duty: float | None = None,
        high_ms: float | None = None,
    ) -> None: ...

    def fault(
        self,
        *,
        force: str | None = None,
        tach: str | None = None,
        power_switch: str | None = None,
        loop_stall_ms: float | None = None,
    ) -> None: ...

    def firmware_step(self, link: Any, firmware: Any) -> None: ...

    def session(self, action: str) -> object: ...

    def pain(self, value: int, when: str | None = None) -> object: ...

    def announce(self, kind: str, **fields: Any) -> None: ...

    def restart(self) -> None: ...

    def reboot(self) -> None: ...

    def step_wall(self, seconds: float) -> None: ...
