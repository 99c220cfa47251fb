"""The benchmarks still run against the current code (``make bench`` is not in CI).

Only the virtual-time parts, with one trial each: their numbers are ``make bench``'s
business; here a renamed API or reason code fails the suite instead of the next bench.
"""

from __future__ import annotations

import logging

from bench import breach


def test_the_virtual_overspeed_benchmark_runs_and_detects_every_step(caplog):
    caplog.set_level(logging.CRITICAL)
    section = breach.overspeed_virtual(1)
    (table,) = section.tables
    no_trip = table.columns.index("no overspeed trip")
    assert len(table.rows) == 12
    assert all(row[no_trip] == 0 for row in table.rows)
    assert section.metrics[0].value <= 3.0  # pulse periods, the bound
