"""How other components take part in supervision without reaching into it.

A plug-in (the firmware guard, the physical controls, the reloader) never assigns the
supervisor's attributes and never calls into it from inside an event. It either

* is *asked*: an admission check may veto arming a region, and a tick check returns
  a :class:`Verdict` every tick (inside the tick, so it must be quick and do no I/O);
* or *posts an intent* (:meth:`Supervisor.post_intent`) from any thread, which the
  supervisor applies at one defined point: the start of its next tick.

A tick check that only has work while a region is armed says so (``idle_safe``), so
virtual time may skip ticks while nothing is armed (:meth:`Supervisor.idle`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gunguard.core.admission import Refusal
from gunguard.core.limits import Limits
from gunguard.core.reasons import TripReason


@dataclass(frozen=True, slots=True)
class Verdict:
    """A tick check's answer."""

    #: Trip now, for this reason and detail.
    trip: tuple[TripReason, str] | None = None
    #: This plug-in judges "power on, no percussion" itself this tick (the firmware
    #: knows whether it drives the motor), so the contact-only stall rule stands down.
    covers_stall: bool = False


AdmissionCheck = Callable[[str, float], Refusal | None]
TickCheck = Callable[[float], Verdict | None]


@dataclass(frozen=True, slots=True)
class Select:
    """Arm ``region`` (None: disarm)."""

    region: str | None
    source: str


@dataclass(frozen=True, slots=True)
class Step:
    """Arm the next (+1) or previous (-1) allowed region (:func:`gunguard.core.regions.step`)."""

    step: int
    source: str


@dataclass(frozen=True, slots=True)
class Reset:
    """Clear a latched trip (power stays off)."""

    source: str


@dataclass(frozen=True, slots=True)
class LongPress:
    """A long press of a button (the GPIO button, the gun's MODE): one rule for both.

    With a trip latched it resets it (power stays off); otherwise it is the person's
    *confirm*, announced as a ``confirm`` event (a guided session moves on). Judged when
    applied, at the start of a tick, so the latch it is judged on is the one in force.
    """

    source: str


@dataclass(frozen=True, slots=True)
class Configure:
    """Adopt new limits; ``when_idle``: only once no region is armed (a looser config)."""

    limits: Limits
    tag: str
    when_idle: bool = False


Intent = Select | Step | Reset | LongPress | Configure
