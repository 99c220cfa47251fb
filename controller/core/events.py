"""Events the supervisor announces, and the bus that delivers them outside its lock.

The supervisor changes its state under its lock and *posts* what happened; the bus
delivers posted events to the listeners in order, later, on a thread that holds no
supervisor lock. So a listener that is slow (a journal, a pipe, a socket, SQLite) can
never stall a tick or an edge, and every listener sees a finished state: each event
carries :class:`State`, the supervisor's state once the change that made it was
complete (never "no region" with the pin still on).

Delivery is inline by default (:meth:`EventBus.flush` delivers at once on the calling
thread, after the supervisor released its lock): virtual time stays deterministic.
The daemon installs a dispatcher thread instead (:meth:`EventBus.set_waker`), so the
control loop and the tach edge thread only append to a queue and set a flag.

A listener that raises is logged and skipped for that event; it can never stop the
supervisor from cutting power, because power is cut before anything is posted.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Event kinds (the ``event`` field of ``simulate --json``).
POWER = "power"  # on: bool
TRIP = "trip"  # reason, detail
REFUSED = "refused"  # reason, region, detail
REGION = "region"  # region (None when deselected)
WARNING = "warning"  # reason, detail
RESET = "reset"  # cleared: the latched reasons it cleared
CONFIG = "config"  # new limits adopted (tag: the config hash)
RESTART = "restart"  # the daemon restarted in place (simulate)
REBOOT = "reboot"  # the Pi was off: a new boot (simulate)
WALL_CLOCK = "wall_clock"  # the calendar clock stepped (simulate)
LINK = "link"  # state of the serial link to the gun's firmware
CONFIRM = "confirm"  # a long press with no trip latched: the person confirms (source)
SESSION = "session"  # a guided session (gunguard.plan.runner): action, and what it concerns
PAIN = "pain"  # a pain score was recorded: value, when, session
SUMMARY = "summary"  # last line of simulate


@dataclass(frozen=True, slots=True)
class State:
    """The supervisor's state once the change behind an event was complete."""

    power_on: bool
    region: str | None
    tripped: str | None  # the latched trip's reason


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at monotonic time ``t`` (simulated seconds in simulate)."""

    t: float
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    state: State | None = None  # None: not from the supervisor (bench, link, service)

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-lines form: ``{"t": 12.345, "event": "trip", "reason": ...}``."""
        return {"t": round(self.t, 6), "event": self.kind, **self.fields}


Listener = Callable[[Event], None]


class EventBus:
    """Ordered delivery of posted events to subscribers, isolated from their failures."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._pending: deque[Event] = deque()
        self._delivering = threading.Lock()
        self._waker: Callable[[], None] | None = None

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add ``listener``; returns a function that removes it again."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def set_waker(self, waker: Callable[[], None] | None) -> None:
        """Deliver on a dispatcher thread: :meth:`flush` only calls ``waker`` (cheap,
        never blocking), and that thread calls :meth:`deliver`. None: inline again."""
        self._waker = waker

    def post(self, event: Event) -> None:
        """Queue ``event`` (any thread, under any lock: an append, nothing else)."""
        self._pending.append(event)

    def flush(self) -> None:
        """Have everything posted delivered: now on this thread, or by the dispatcher.

        Never call this while holding the supervisor's lock.
        """
        waker = self._waker
        if waker is not None:
            waker()
        else:
            self.deliver()

    def emit(self, event: Event) -> None:
        """Post and flush: for announcers that hold no supervisor lock."""
        self.post(event)
        self.flush()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def deliver(self) -> None:
        """Deliver posted events in order. One thread delivers at a time; a call made
        while another delivery runs (or from inside a listener) returns at once, and
        the running delivery takes its events too."""
        pending = self._pending
        while pending:
            if not self._delivering.acquire(blocking=False):
                return
            try:
                while pending:
                    try:
                        event = pending.popleft()
                    except IndexError:
                        break
                    for listener in tuple(self._listeners):
                        try:
                            listener(event)
                        except Exception:  # a broken listener must not break supervision
                            log.exception("event listener %r failed on %s", listener, event.kind)
            finally:
                self._delivering.release()
