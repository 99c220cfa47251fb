"""Force, judged over time: contact with hysteresis, and overforce over a sliding window.

Pure and clock-free: the supervisor feeds each tick's time, tick length and force.

* :class:`Contact` decides whether the head is on the body. It is entered at
  ``contact_force_n`` and left only after the force has stayed below a lower release
  level for longer than a hold time, so a real but light press near the threshold is
  not lost to sensor noise (counted time follows the press, not each 1 ms sample).
* :class:`ForceWindow` keeps the last ``window_s`` of force: the time spent above the
  limit in it and the mean force over it. Bursts far above the limit cannot hide
  between dips: what counts is the sum of the time above the limit within any window,
  and the mean of what was pressed. When the limit changes (a reload, another region)
  the whole window is judged again by the new one.
"""

from __future__ import annotations


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

    def settled(self, force_n: float) -> bool:
        """Whether a reading of ``force_n`` would leave the state as it is, now and later
        (no contact to enter, no release being timed): what an idle stretch needs."""
        if self.active:
            return force_n >= self._off_n
        return force_n < self._on_n

    def clear(self) -> None:
        self.active = False
        self._below_since = None


class ForceWindow:
    """Time above the limit and mean force over the last ``window_s`` seconds.

    Each tick adds ``(dt, force)``. Running totals grow with every tick; a ring keeps,
    per tick, its time and the totals after it, so a window's sums are "totals now minus
    totals just before the window": a tick costs a few stores, no allocation. The ring
    holds :data:`CAPACITY` ticks (a second at the fastest loop allowed, 5 kHz, with room
    to spare); time before the first sample counts as no force, so the mean is over the
    whole window.
    """

    CAPACITY = 8192

    __slots__ = (
        "_base_duration",
        "_base_impulse",
        "_base_over",
        "_count",
        "_duration",
        "_head",
        "_impulse",
        "_over",
        "_ring_dt",
        "_ring_duration",
        "_ring_force",
        "_ring_impulse",
        "_ring_over",
        "_ring_t",
        "_window_s",
        "duration",
        "impulse",
        "limit",
        "over_s",
    )

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        n = self.CAPACITY
        self._ring_t = [0.0] * n
        self._ring_over = [0.0] * n
        self._ring_impulse = [0.0] * n
        self._ring_duration = [0.0] * n
        self._ring_force = [0.0] * n
        self._ring_dt = [0.0] * n
        self.limit = float("inf")
        self.clear()

    def add(self, now: float, dt: float, force_n: float, limit_n: float) -> None:
        """One tick's sample; the control loop's hot path (no call in the common case: a
        tick in, the oldest out)."""
        if limit_n != self.limit:
            self._rejudge(limit_n)
        over = self._over
        if force_n > limit_n:
            over += dt
            self._over = over
        impulse = self._impulse
        if force_n > 0.0:
            impulse += force_n * dt
            self._impulse = impulse
        duration = self._duration + dt
        self._duration = duration
        cap = self.CAPACITY
        head, count = self._head, self._count
        ring_t, ring_over = self._ring_t, self._ring_over
        ring_impulse, ring_duration = self._ring_impulse, self._ring_duration
        if count == cap:  # full (faster than the ring was sized for): drop the oldest
            self._drop(head)
            head = head + 1 if head + 1 < cap else 0
            count -= 1
        slot = head + count
        if slot >= cap:
            slot -= cap
        ring_t[slot] = now
        ring_over[slot] = over
        ring_impulse[slot] = impulse
        ring_duration[slot] = duration
        self._ring_force[slot] = force_n
        self._ring_dt[slot] = dt
        count += 1
        start = now - self._window_s + 1e-9  # (a sample ending exactly there is out)
        if ring_t[head] <= start:
            # Expire: the totals just after the last sample that leaves become the base.
            while True:
                last = head
                head = head + 1 if head + 1 < cap else 0
                count -= 1
                if ring_t[head] > start:
                    break
            self._base_over = ring_over[last]
            self._base_impulse = ring_impulse[last]
            self._base_duration = ring_duration[last]
        self._head, self._count = head, count
        self.over_s = over - self._base_over
        self.impulse = impulse - self._base_impulse
        self.duration = duration - self._base_duration

    def over_limit(self, now: float, limit_n: float, debounce_s: float) -> bool:
        """Would the last ``window_s`` before ``now`` trip against ``limit_n``? (Arming
        asks it, perhaps after ticks were skipped: samples expire by time, not by ticks.)"""
        self._expire(now)
        if limit_n != self.limit:
            self._rejudge(limit_n)
        return self.over_debounce(debounce_s) or self.mean_n > limit_n

    def over_debounce(self, debounce_s: float) -> bool:
        """Whether the time above the limit in the window has reached ``debounce_s``.

        Some time above it is always needed: with no debounce (0 ms) one sample above the
        limit trips, and a window with none above it never does. The tolerance absorbs
        the rounding of a sum of tick lengths."""
        over = self.over_s
        return over > 0.0 and over >= debounce_s - 1e-9

    def _expire(self, now: float) -> None:
        cap = self.CAPACITY
        start = now - self._window_s + 1e-9
        head, count = self._head, self._count
        while count and self._ring_t[head] <= start:
            self._drop(head)
            head = (head + 1) % cap
            count -= 1
        self._head, self._count = head, count
        self.over_s = self._over - self._base_over
        self.impulse = self._impulse - self._base_impulse
        self.duration = self._duration - self._base_duration

    def _rejudge(self, limit_n: float) -> None:
        """Judge the samples in the window by a new limit (rare: a reload, a region)."""
        self.limit = limit_n
        cap = self.CAPACITY
        over = self._base_over
        for k in range(self._count):
            slot = (self._head + k) % cap
            if self._ring_force[slot] > limit_n:
                over += self._ring_dt[slot]
            self._ring_over[slot] = over
        self._over = over
        self.over_s = over - self._base_over

    def _drop(self, slot: int) -> None:
        """The oldest sample leaves the window: its totals become the base."""
        self._base_over = self._ring_over[slot]
        self._base_impulse = self._ring_impulse[slot]
        self._base_duration = self._ring_duration[slot]

    @property
    def mean_n(self) -> float:
        """Mean force over the whole window (or over the samples, if they cover more)."""
        duration = self.duration
        return self.impulse / (duration if duration > self._window_s else self._window_s)

    def clear(self) -> None:
        self._head = self._count = 0
        self._over = self._impulse = self._duration = 0.0
        self._base_over = self._base_impulse = self._base_duration = 0.0
        self.over_s = self.impulse = self.duration = 0.0
