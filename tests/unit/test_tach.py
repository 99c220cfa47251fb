"""The percussion rate from tachometer edge times (pure), and on the bench."""

from __future__ import annotations

import pytest

from gunguard.core.tach import TachRateMeter
from gunguard.sim.bench import Bench


def meter(ppp: int = 1) -> TachRateMeter:
    return TachRateMeter(pulses_per_percussion=ppp, stopped_after_s=0.2)


def feed(m: TachRateMeter, times: list[float]) -> list[float]:
    return [m.edge(t, True) for t in times]


def test_rate_is_one_period_between_active_edges():
    m = meter()
    assert feed(m, [0.0, 0.025, 0.055]) == [0.0, pytest.approx(2400), pytest.approx(2000)]
    assert m.rate_ppm == pytest.approx(2000)
    assert m.last_edge == 0.055


def test_several_pulses_per_percussion_span_one_whole_percussion():
    m = meter(ppp=3)
    # Three pulses per percussion, 10 ms apart: one percussion takes 30 ms = 2000 ppm.
    rates = feed(m, [0.0, 0.010, 0.020, 0.030, 0.040])
    assert rates[:3] == [0.0, 0.0, 0.0]  # no full percussion yet
    assert rates[3:] == [pytest.approx(2000), pytest.approx(2000)]
    # An uneven pulse within the percussion does not change the percussion's rate.
    m2 = meter(ppp=3)
    assert feed(m2, [0.0, 0.005, 0.025, 0.030])[-1] == pytest.approx(2000)


def test_inactive_edges_are_ignored():
    m = meter()
    feed(m, [0.0, 0.025])
    assert m.edge(0.0125, False) == pytest.approx(2400)
    assert m.last_edge == 0.025
    assert m.edge(0.050, True) == pytest.approx(2400)


def test_a_gap_longer_than_stopped_after_starts_a_new_run():
    m = meter()
    feed(m, [0.0, 0.025])
    assert m.edge(0.2255, True) == 0.0  # 200.5 ms later: stopped, not 299 ppm
    assert m.edge(0.2505, True) == pytest.approx(2400)
    # exactly stopped_after is still one run (the rule is "longer than")
    m2 = meter()
    assert feed(m2, [0.0, 0.2]) == [0.0, pytest.approx(300)]


def test_rate_at_falls_while_no_edge_comes_and_is_zero_after_stopped_after():
    m = meter()
    assert m.rate_at(1.0) == 0.0  # never an edge
    feed(m, [0.0, 0.025])
    assert m.rate_at(0.025) == pytest.approx(2400)
    assert m.rate_at(0.045) == pytest.approx(2400)  # 20 ms since: 3000 is no bound
    assert m.rate_at(0.050) == pytest.approx(2400)  # a full period: exactly the bound
    assert m.rate_at(0.055) == pytest.approx(2000)  # 30 ms since: at most 2000 ppm
    assert m.rate_at(0.225) == pytest.approx(300)
    assert m.rate_at(0.2251) == 0.0


def test_rate_at_bound_counts_pulses_per_percussion():
    m = meter(ppp=2)
    feed(m, [0.0, 0.0125, 0.025])  # 2400 ppm, a pulse every 12.5 ms
    assert m.rate_at(0.025) == pytest.approx(2400)
    # A pulse now would close the percussion begun at 0.0125 s: 37.5 ms, 1600 ppm.
    assert m.rate_at(0.05) == pytest.approx(1600)


def test_rate_at_is_not_lowered_by_a_long_gap_between_uneven_pulses():
    """Two magnets unevenly spaced (4.7 ms + 19.8 ms = 24.5 ms, 2449 ppm): waiting for
    the next pulse never reads below the rate a pulse arriving now would make."""
    m = meter(ppp=2)
    t, times = 0.0, []
    for _ in range(4):
        times += [t, t + 0.0047]
        t += 0.0245
    feed(m, times)
    last = times[-1]
    for wait in (0.001, 0.010, 0.0198):
        # the percussion a pulse at last + wait would end began at times[-2]
        assert m.rate_at(last + wait) == pytest.approx(
            min(m.rate_ppm, 60 / (last + wait - times[-2]))
        )
    assert m.rate_at(last + 0.0198) > 2400


def test_slowest_is_of_whole_percussions_end_to_end():
    m = meter(ppp=2)
    # pulses 4.7, 18, 18, 4.7 ms: the percussions ending at the last edge are 22.7 ms
    # and 22.7 ms (2643 ppm each), though the overlapping span between is 36 ms.
    feed(m, [0.0, 0.0047, 0.0227, 0.0407, 0.0454])
    assert m.slowest_ppm == pytest.approx(60 / 0.0227)
    m1 = meter()
    feed(m1, [0.0, 0.020, 0.045])  # 3000 then 2400 ppm
    assert m1.slowest_ppm == pytest.approx(2400)
    assert meter().slowest_ppm == 0.0


def test_reconfigure_keeps_what_was_measured():
    m = meter()
    feed(m, [0.0, 0.020, 0.040, 0.060])
    m.reconfigure(stopped_after_s=0.1)
    assert (m.rate_ppm, m.slowest_ppm, m.last_edge) == (
        pytest.approx(3000),
        pytest.approx(3000),
        0.060,
    )
    assert m.edge(0.080, True) == pytest.approx(3000)


def test_two_edges_at_the_same_instant_are_an_infinite_rate():
    m = meter()
    assert feed(m, [1.0, 1.0]) == [0.0, float("inf")]


def test_clear_forgets_everything():
    m = meter()
    feed(m, [0.0, 0.001, 0.026])
    m.clear()
    assert (m.last_edge, m.rate_ppm, m.slowest_ppm, m.mean_ppm) == (None, 0.0, 0.0, None)
    assert m.rate_at(0.03) == 0.0
    assert m.edge(0.05, True) == 0.0  # a new run needs a whole percussion again


@pytest.mark.parametrize("ppp", [1, 3])
def test_bench_measures_the_percussion_rate_whatever_the_pulses_per_percussion(cfg, ppp):
    bench = Bench(cfg(hardware={"tachometer": {"pulses_per_percussion": ppp}}))
    try:
        assert bench.select("calf-left") is None
        bench.gun(ppm=2200, force_n=0)
        bench.run(1.0)  # spun up within 0.4 s
        tach = bench.rig.tachometer.pin
        before = len(tach.states)
        seen = []
        for _ in range(20):
            bench.run(0.05)
            seen.append(bench.supervisor.rate_ppm)
        # +-1 % jitter on each pulse interval, a rate over one whole percussion
        assert all(2200 / 1.01 - 1 <= r <= 2200 / 0.99 + 1 for r in seen), seen
        # 1 s at 2200 ppm: 36.7 percussions, two pin changes per pulse
        changes = len(tach.states) - before
        assert 2 * ppp * 36 <= changes <= 2 * ppp * 38
        assert bench.trips() == []
    finally:
        bench.close()
