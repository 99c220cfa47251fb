"""The real-time control loop: tick the supervisor at ``loop.rate_hz`` until told to stop.

Deadlines are absolute (``start + n * period``), so lateness does not accumulate;
after a long stall the schedule restarts from now instead of bursting to catch up
(the supervisor has already tripped ``loop_overrun`` for the gap).

It runs in the calling thread (the daemon's main thread); the dead-man that watches
it from outside is :class:`gunguard.service.watchdog.LoopWatchdog`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gunguard.core.clock import Clock
from gunguard.core.supervisor import Supervisor

log = logging.getLogger(__name__)

TickHook = Callable[[float], None]


class RealtimeLoop:
    """Runs :meth:`Supervisor.tick` on a fixed period in the calling thread."""

    def __init__(self, supervisor: Supervisor, clock: Clock, rate_hz: float) -> None:
        self.supervisor = supervisor
        self._clock = clock
        self.period = 1.0 / rate_hz
        self._hooks: list[TickHook] = []
        self._stall_s = 0.0
        self.ticks = 0

    def add_hook(self, hook: TickHook) -> None:
        """Run ``hook(now)`` after every tick (systemd watchdog gate, ...). Keep it cheap."""
        self._hooks.append(hook)

    def stall(self, milliseconds: float) -> None:
        """Fault injection: the next iteration sleeps this long instead of ticking."""
        self._stall_s = milliseconds / 1000.0

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; power is off when this returns or raises."""
        clock = self._clock
        tick = self.supervisor.tick
        hooks = self._hooks
        period = self.period
        self.supervisor.loop_starting()
        deadline = clock.monotonic()
        try:
            while not stop.is_set():
                if self._stall_s:
                    stalled, self._stall_s = self._stall_s, 0.0
                    time.sleep(stalled)
                tick()
                self.ticks += 1
                now = clock.monotonic()
                for hook in hooks:
                    hook(now)
                deadline += period
                delay = deadline - clock.monotonic()
                if delay > 0.0:
                    time.sleep(delay)
                elif delay < -period:
                    deadline = clock.monotonic()
        finally:
            self.supervisor.close()
