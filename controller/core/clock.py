"""Injected time sources.

Every component takes a :class:`Clock` instead of calling :mod:`time`, so the same
supervisor runs in real time (``gunguard run``) and in virtual time (``simulate``,
tests). ``monotonic()`` measures durations inside a session; ``wall()`` is the
calendar time used across restarts, and may jump (a Pi has no real-time clock).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    """What the supervisor needs to know about time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (durations)."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (calendar time; may step)."""
        ...

    def boot_id(self) -> str | None:
        """Which boot of the machine this is: within one boot the monotonic clock runs on
        across daemon restarts, so elapsed time between them is known."""
        ...


class RealClock:
    """The machine's clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def boot_id(self) -> str | None:
        try:
            return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            return None


class VirtualClock:
    """A clock that moves only when told to.

    >>> clock = VirtualClock(start_wall=1_700_000_000.0)
    >>> clock.advance_to(2.5)
    >>> clock.monotonic(), clock.wall()
    (2.5, 1700000002.5)
    """

    def __init__(self, start: float = 0.0, start_wall: float = 1_795_000_000.0) -> None:
        self._now = start
        self._wall_offset = start_wall - start
        self._machine = uuid.uuid4().hex[:12]  # each virtual clock is another machine
        self._boot = 1

    def boot_id(self) -> str:
        return f"virtual-{self._machine}-{self._boot}"

    def reboot(self) -> None:
        """The machine restarts: a new boot (its monotonic time is not comparable)."""
        self._boot += 1

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance_to(self, t: float) -> None:
        """Move to ``t``; a request to go back is a bug in the caller."""
        if t < self._now:
            raise ValueError(f"virtual time cannot go back: {t} < {self._now}")
        self._now = t

    def advance(self, dt: float) -> None:
        self.advance_to(self._now + dt)

    def step_wall(self, seconds: float) -> None:
        """Step the calendar clock (NTP sync, a boot without saved time) without moving time."""
        self._wall_offset += seconds
