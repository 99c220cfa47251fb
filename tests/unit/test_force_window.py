"""The force window's running totals against the straightforward sums over its samples."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gunguard.core.force import ForceWindow

WINDOW_S = 1.0


class SmallWindow(ForceWindow):
    """A ring that fills within the window, so the drop-by-count path runs too."""

    CAPACITY = 16


def reference(samples: list[tuple[float, float, float]], limit: float) -> tuple[float, ...]:
    """Time above ``limit``, impulse and duration of ``(t, dt, force)``, summed afresh."""
    over = sum(dt for _, dt, f in samples if f > limit)
    impulse = sum(f * dt for _, dt, f in samples if f > 0.0)
    duration = sum(dt for _, dt, _ in samples)
    return over, impulse, duration


ticks = st.lists(
    st.tuples(
        st.sampled_from([0.001, 0.005, 0.0013, 0.02, 0.3]),  # tick length (s)
        st.floats(-20.0, 200.0, allow_nan=False),  # force (N)
        st.sampled_from([50.0, 90.0, 120.0]),  # the armed region's limit (N)
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(ticks, st.booleans())
def test_running_totals_match_fresh_sums(
    seq: list[tuple[float, float, float]], small: bool
) -> None:
    window = SmallWindow(WINDOW_S) if small else ForceWindow(WINDOW_S)
    samples: list[tuple[float, float, float]] = []
    now = 0.0
    for dt, force, limit in seq:
        now += dt
        window.add(now, dt, force, limit)
        samples.append((now, dt, force))
        if len(samples) > window.CAPACITY:
            samples.pop(0)
        samples = [s for s in samples if s[0] > now - WINDOW_S + 1e-9]
        over, impulse, duration = reference(samples, limit)
        assert math.isclose(window.over_s, over, abs_tol=1e-9)
        assert math.isclose(window.impulse, impulse, rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(window.duration, duration, abs_tol=1e-9)
        assert math.isclose(
            window.mean_n, impulse / max(duration, WINDOW_S), rel_tol=1e-9, abs_tol=1e-9
        )
    # Later, perhaps after skipped ticks: the samples expire by time.
    later = now + 0.5
    expected = [s for s in samples if s[0] > later - WINDOW_S + 1e-9]
    over, impulse, duration = reference(expected, 90.0)
    window.over_limit(later, 90.0, 0.1)
    assert math.isclose(window.over_s, over, abs_tol=1e-9)
    assert math.isclose(window.impulse, impulse, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(window.duration, duration, abs_tol=1e-9)
