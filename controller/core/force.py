"""Force, judged over time: contact with hysteresis, and overforce over a sliding window.

Pure and clock-free: the supervisor feeds each tick's time, tick length and force.

* :class:`Contact` decides whether the head is on the body. It is entered at
  ``contact_force_n`` and left only after the force has stayed below a lower release
  level for longer than a hold time, so a real but light press near the threshold is
  not lost to sensor noise (counted time follows the press, not each 1 ms sample).
* :class:`ForceWindow` keeps the last ``window_s`` of force: the time spent above the
  limit in it and the mean force over it. Bursts far above the limit cannot hide
  between dips: what counts is the sum of the time above the limit within any window,
  and the mean of what was pressed.
"""

from __future__ import annotations

from collections import deque


class Contact:
    """Contact with hysteresis: on at ``on_n``; off below ``off_n`` held over ``hold_s``."""

    __slots__ = ("_below_since", "_hold_s", "_off_n", "_on_n", "active")

    def __init__(self, on_n: float, off_n: float, hold_s: float) -> None:
        self._on_n = on_n
        self._off_n = off_n
        self._hold_s = hold_s
        self._below_since: float | None = None
        self.active = False

    def update(self, now: float, force_n: float) -> bool:
        """The contact state after a reading of ``force_n`` at ``now``."""
        if force_n >= self._on_n:
            self.active = True
            self._below_since = None
        elif force_n < self._off_n:
            if self._below_since is None:
                self._below_since = now
            if self.active and now - self._below_since > self._hold_s:
                self.active = False
        else:
            self._below_since = None  # between the two levels: the state holds
        return self.active

    def clear(self) -> None:
        self.active = False
        self._below_since = None


class ForceWindow:
    """Time above the limit and mean force over the last ``window_s`` seconds.

    Each tick adds ``(dt, force)``; the sums are kept running (a tick costs an append
    and a pop) and re-added from scratch now and then so rounding cannot drift. Time
    before the first sample counts as no force: the mean is over the whole window.
    """

    __slots__ = ("_adds", "_samples", "_window_s", "duration", "impulse", "over_s")

    _RESUM_EVERY = 4096

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._samples: deque[tuple[float, float, float, float]] = deque()  # t, dt, over, impulse
        self.over_s = 0.0  # seconds above the limit within the window
        self.impulse = 0.0  # newton-seconds within the window
        self.duration = 0.0  # seconds the samples in the window cover
        self._adds = 0

    def add(self, now: float, dt: float, force_n: float, limit_n: float) -> None:
        over = dt if force_n > limit_n else 0.0
        impulse = force_n * dt if force_n > 0.0 else 0.0
        samples = self._samples
        samples.append((now, dt, over, impulse))
        self.over_s += over
        self.impulse += impulse
        self.duration += dt
        start = now - self._window_s + 1e-9  # (a sample ending exactly there is out)
        while samples[0][0] <= start:
            _, old_dt, old_over, old_impulse = samples.popleft()
            self.over_s -= old_over
            self.impulse -= old_impulse
            self.duration -= old_dt
        self._adds += 1
        if self._adds >= self._RESUM_EVERY:
            self._adds = 0
            self.duration = sum(s[1] for s in samples)
            self.over_s = sum(s[2] for s in samples)
            self.impulse = sum(s[3] for s in samples)

    @property
    def mean_n(self) -> float:
        """Mean force over the whole window (or over the samples, if they cover more)."""
        duration = self.duration
        return self.impulse / (duration if duration > self._window_s else self._window_s)

    def clear(self) -> None:
        self._samples.clear()
        self.over_s = self.impulse = self.duration = 0.0
