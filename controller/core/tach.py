"""Percussion rate from tachometer edge timestamps (pure: no pins, no clock).

The rate is one percussion's period measured between the active edges that bound it
(``pulses_per_percussion`` pulses), not a count per window: a window would add its
whole length to the reaction time. Beside it the meter keeps the *mean* rate over the
percussions of the last ``window_s`` (0.25 s), so an uneven pattern (periods alternating
short and long) cannot hide a mean above the cap. Fed ``(timestamp, active)`` by the pin driver in
real time and by the simulated gun in virtual time.

>>> meter = TachRateMeter(pulses_per_percussion=1, min_interval_s=0.005, stopped_after_s=0.2)
>>> for t in (0.0, 0.025, 0.050):
...     _ = meter.edge(t, True)
>>> round(meter.rate_at(0.050))
2400
"""

from __future__ import annotations

from collections import deque


class TachRateMeter:
    """Rate in percussions per minute from active-edge timestamps."""

    __slots__ = (
        "_edges",
        "_min_interval_s",
        "_ppp",
        "_recent",
        "_stopped_after_s",
        "_window_s",
        "glitch_interval",
        "last_edge",
        "mean_ppm",
        "rate_ppm",
    )

    def __init__(
        self,
        pulses_per_percussion: int,
        min_interval_s: float,
        stopped_after_s: float,
        window_s: float = 0.25,
    ) -> None:
        self._ppp = pulses_per_percussion
        self._min_interval_s = min_interval_s
        self._stopped_after_s = stopped_after_s
        self._window_s = window_s
        self._edges: deque[float] = deque(maxlen=pulses_per_percussion + 1)
        self._recent: deque[float] = deque()
        self.last_edge: float | None = None
        #: Rate over the latest full percussion; 0.0 until one is complete.
        self.rate_ppm = 0.0
        #: Mean rate over the percussions of the last ``window_s`` (at least); None until
        #: a run has lasted that long.
        self.mean_ppm: float | None = None
        #: The shortest implausible interval seen since the last :meth:`clear`, if any.
        self.glitch_interval: float | None = None

    def edge(self, t: float, active: bool) -> float:
        """Take one pin change; returns the rate after it (ppm)."""
        if not active:
            return self.rate_ppm
        last = self.last_edge
        if last is not None:
            interval = t - last
            if interval < self._min_interval_s and (
                self.glitch_interval is None or interval < self.glitch_interval
            ):
                self.glitch_interval = interval
            if interval > self._stopped_after_s:
                self._edges.clear()  # a new run: do not average across a stop
                self._recent.clear()
                self.rate_ppm = 0.0
                self.mean_ppm = None
        self.last_edge = t
        edges = self._edges
        edges.append(t)
        if len(edges) == edges.maxlen:
            period = t - edges[0]
            self.rate_ppm = 60.0 / period if period > 0.0 else float("inf")
        # The mean: keep the edges back to the last one at least window_s before this one.
        recent = self._recent
        recent.append(t)
        start = t - self._window_s
        while len(recent) > 2 and recent[1] <= start:
            recent.popleft()
        span = t - recent[0]
        if recent[0] <= start and span > 0.0:
            self.mean_ppm = 60.0 * (len(recent) - 1) / (self._ppp * span)
        return self.rate_ppm

    def rate_at(self, now: float) -> float:
        """The rate at ``now``: the last measured one, lowered while no edge comes."""
        last = self.last_edge
        if last is None:
            return 0.0
        since = now - last
        if since > self._stopped_after_s:
            return 0.0
        if since > 0.0:
            bound = 60.0 / (since * self._ppp)
            if bound < self.rate_ppm:
                return bound
        return self.rate_ppm

    def clear(self) -> None:
        """Forget history (after a reset), so old glitches and runs do not carry over."""
        self._edges.clear()
        self._recent.clear()
        self.last_edge = None
        self.rate_ppm = 0.0
        self.mean_ppm = None
        self.glitch_interval = None
