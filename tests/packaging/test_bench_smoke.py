"""The benchmarks still run against the current code (``make bench`` is not in CI).

Only the virtual-time parts, with one trial each: their numbers are ``make bench``'s
business; here a renamed API or reason code fails the suite instead of the next bench.
"""

from __future__ import annotations

import logging

from bench import breach, simspeed


def test_the_virtual_overspeed_benchmark_runs_and_detects_every_step(caplog):
    caplog.set_level(logging.CRITICAL)
    section = breach.overspeed_virtual(1)
    (table,) = section.tables
    no_trip = table.columns.index("no overspeed trip")
    assert len(table.rows) == 12
    assert all(row[no_trip] == 0 for row in table.rows)
    assert section.metrics[0].value <= 3.0  # pulse periods, the bound


def test_the_simulate_speed_benchmark_plays_a_scenario_with_and_without_the_ledger(
    caplog, tmp_path
):
    caplog.set_level(logging.CRITICAL)
    # The benchmark's own scenario, cut to its first three seconds.
    text = simspeed.SCENARIO.read_text().replace("duration: 600", "duration: 3")
    short = tmp_path / "short.yaml"
    short.write_text(text.split("  - {at: 200.0")[0])
    for with_ledger in (False, True):
        wall, edges = simspeed.in_process_once(with_ledger, short)
        assert wall > 0.0
        assert edges > 0  # the gun percussed through gpiozero's callbacks


def test_the_real_time_breach_benchmarks_arm_every_trial(caplog):
    """Each trial re-arms straight after the last one's trip: the benchmark clears the
    windows a reset keeps, or every trial would be refused over_limit (it was, unseen)."""
    caplog.set_level(logging.CRITICAL)
    cut, _, rejects = breach._overforce_trials(
        breach.config(limits__force_debounce_ms=0.0), 3, seed=1
    )
    assert len(cut) == 3
    assert "not armed" not in rejects
    _, _, rejects = breach._overspeed_trials(breach.config(), 2, ppm=2800.0, seed=1)
    assert "not armed" not in rejects
