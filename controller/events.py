"""Events the supervisor announces, and the bus that carries them.

Listeners (the JSON printer of ``simulate``, the treatment ledger, the serial link,
systemd's status line, the control socket) subscribe to one :class:`EventBus`.
Events are rare (state changes, not ticks), so a listener runs synchronously on the
thread that caused the event and must return quickly: anything slow (disk, serial,
sockets) is handed to that listener's own thread.

A listener that raises is logged and dropped from that emission; it can never stop
the supervisor from cutting power, because power is cut before anything is emitted.
"""

from __future__ import annotations

import logging
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
RESET = "reset"  # (the latched trip it cleared)
RESTART = "restart"  # the daemon restarted in place (simulate)
WALL_CLOCK = "wall_clock"  # the calendar clock stepped (simulate)
LINK = "link"  # state of the serial link to the gun's firmware
SUMMARY = "summary"  # last line of simulate


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at monotonic time ``t`` (simulated seconds in simulate)."""

    t: float
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-lines form: ``{"t": 12.345, "event": "trip", "reason": ...}``."""
        return {"t": round(self.t, 6), "event": self.kind, **self.fields}


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out of supervisor events to subscribers, isolated from their failures."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add ``listener``; returns a function that removes it again."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break supervision
                log.exception("event listener %r failed on %s", listener, event.kind)
