"""Percussion rate from tachometer edge timestamps (pure: no pins, no clock).

The rate is one percussion's period measured between the active edges that bound it
(``pulses_per_percussion`` pulses), not a count per window: a window would add its
whole length to the reaction time. Beside it the meter keeps:

* the *slowest* of the last ``confirm`` whole percussions ending at this edge (they do
  not overlap), so "two consecutive percussions over the cap" is judged at every edge,
  whatever the pulses in between and whatever happened before (a reset, a reload);
* the *mean* rate over the percussions of the last ``window_s`` (0.25 s), so an uneven
  pattern (periods alternating short and long) cannot hide a mean above the cap.

Fed ``(timestamp, active)`` by the pin driver in real time and by the simulated gun in
virtual time.

>>> meter = TachRateMeter(pulses_per_percussion=1, stopped_after_s=0.2)
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
        "_confirm",
        "_edges",
        "_ppp",
        "_recent",
        "_stopped_after_s",
        "_window_s",
        "last_edge",
        "mean_ppm",
        "rate_ppm",
        "slowest_ppm",
    )

    def __init__(
        self,
        pulses_per_percussion: int,
        stopped_after_s: float,
        window_s: float = 0.25,
        confirm: int = 2,
    ) -> None:
        self._ppp = pulses_per_percussion
        self._stopped_after_s = stopped_after_s
        self._window_s = window_s
        self._confirm = confirm
        self._edges: deque[float] = deque(maxlen=confirm * pulses_per_percussion + 1)
        self._recent: deque[float] = deque()
        self.last_edge: float | None = None
        #: Rate over the latest full percussion; 0.0 until one is complete.
        self.rate_ppm = 0.0
        #: The slowest of the last ``confirm`` whole percussions; 0.0 until there are as many.
        self.slowest_ppm = 0.0
        #: Mean rate over the percussions of the last ``window_s`` (at least); None until
        #: a run has lasted that long.
        self.mean_ppm: float | None = None

    def edge(self, t: float, active: bool) -> float:
        """Take one pin change; returns the rate after it (ppm)."""
        if not active:
            return self.rate_ppm
        last = self.last_edge
        if last is not None and t - last > self._stopped_after_s:
            self._edges.clear()  # a new run: do not average across a stop
            self._recent.clear()
            self.rate_ppm = self.slowest_ppm = 0.0
            self.mean_ppm = None
        self.last_edge = t
        edges = self._edges
        edges.append(t)
        ppp = self._ppp
        n = len(edges)
        if n > ppp:
            self.rate_ppm = _ppm(t - edges[n - 1 - ppp], 1)
            if n == edges.maxlen:  # ``confirm`` whole percussions, end to end
                slowest = max(edges[i + ppp] - edges[i] for i in range(0, n - 1, ppp))
                self.slowest_ppm = _ppm(slowest, 1)
        # The mean: keep the edges back to the last one at least window_s before this one.
        recent = self._recent
        recent.append(t)
        start = t - self._window_s
        while len(recent) > 2 and recent[1] <= start:
            recent.popleft()
        span = t - recent[0]
        if recent[0] <= start and span > 0.0:
            self.mean_ppm = 60.0 * (len(recent) - 1) / (ppp * span)
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
            # The percussion a pulse arriving now would close: from ``ppp`` pulses back
            # (not ``ppp`` times the wait, which assumes evenly spaced pulses).
            # (Every tick between edges: :func:`_ppm` inlined.)
            edges = self._edges
            ppp = self._ppp
            span = now - edges[-ppp] if len(edges) >= ppp else since * ppp
            bound = 60.0 / span if span > 0.0 else float("inf")
            if bound < self.rate_ppm:
                return bound
        return self.rate_ppm

    def reconfigure(self, stopped_after_s: float) -> None:
        """New limits (a reload): the measured history stays, so every window and the
        consecutive-percussion rule go on judging what was already measured."""
        self._stopped_after_s = stopped_after_s

    @property
    def pulses_per_percussion(self) -> int:
        return self._ppp

    def clear(self) -> None:
        """Forget history (a test's fresh start; a reset keeps it: the person's exposure
        does not end with a reset)."""
        self._edges.clear()
        self._recent.clear()
        self.last_edge = None
        self.rate_ppm = self.slowest_ppm = 0.0
        self.mean_ppm = None


def _ppm(span_s: float, pulses_per_percussion: int) -> float:
    """Percussions per minute for one percussion (or pulse gap x ppp) of ``span_s``."""
    return 60.0 / (span_s * pulses_per_percussion) if span_s > 0.0 else float("inf")
