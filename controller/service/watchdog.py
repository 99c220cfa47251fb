"""The in-process dead-man for the control loop.

:class:`LoopWatchdog` is a second thread that cuts power and trips ``loop_overrun``
when the loop has not ticked for ``max_loop_gap_ms``, the way an MCU's timer forces
its outputs off when the host falls silent. (Against a frozen *process*, the dynamic
enable and systemd's watchdog are the answers.)
"""

from __future__ import annotations

import threading

from gunguard.core.clock import Clock
from gunguard.core.reasons import TripReason
from gunguard.core.supervisor import Supervisor


class LoopWatchdog(threading.Thread):
    """Trips ``loop_overrun`` from outside the loop when ticks stop coming."""

    def __init__(self, supervisor: Supervisor, clock: Clock, max_gap_s: float) -> None:
        super().__init__(name="gunguard-loop-watchdog", daemon=True)
        self._supervisor = supervisor
        self._clock = clock
        self._max_gap_s = max_gap_s
        self._stopping = threading.Event()

    def run(self) -> None:
        check_every = self._max_gap_s / 4.0
        while not self._stopping.wait(check_every):
            gap = self._clock.monotonic() - self._supervisor.last_tick
            if gap > self._max_gap_s:
                self._supervisor.trip(
                    TripReason.LOOP_OVERRUN,
                    f"loop silent for {gap * 1000:.1f} ms (max_loop_gap_ms "
                    f"{self._max_gap_s * 1000:g}), seen by the watchdog thread",
                )

    def stop(self) -> None:
        self._stopping.set()
