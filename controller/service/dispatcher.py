"""The daemon's event dispatcher: the one thread that runs event listeners.

The control loop and the tach edge thread only post events and set a flag
(:meth:`gunguard.core.events.EventBus.set_waker`); this thread delivers them in order,
outside the supervisor's lock, to the listeners that may be slow: the journal, the
ledger's bookkeeping, the control socket, the firmware link's commands, the printed
events of ``run --sim-gun``.
"""

from __future__ import annotations

import threading

from gunguard.core.events import EventBus


class EventDispatcher(threading.Thread):
    """Delivers the bus's events on its own thread until stopped (then drains them)."""

    def __init__(self, bus: EventBus) -> None:
        super().__init__(name="gunguard-events", daemon=True)
        self._bus = bus
        self._wake = threading.Event()
        self._stopping = threading.Event()
        bus.set_waker(self._wake.set)

    def run(self) -> None:
        bus, wake = self._bus, self._wake
        while not self._stopping.is_set():
            wake.wait()
            wake.clear()
            bus.deliver()
        bus.deliver()

    def stop(self, timeout: float = 2.0) -> None:
        """Deliver what is left, then stop; afterwards events are delivered inline."""
        self._stopping.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)
        self._bus.set_waker(None)
        self._bus.deliver()
