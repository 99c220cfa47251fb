"""gunguard's benchmarks (issue 7): ``make bench`` runs them all, see ``bench/__main__.py``.

Each module measures one thing and returns a :class:`bench.common.Section`;
``bench/results/latest.md`` is the table a full run writes.
"""
