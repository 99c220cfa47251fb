"""Simulation: the virtual-time bench, the simulated gun and firmware, the scenario
format and player, ``gunguard simulate``, and the real-time simulated gun of
``gunguard run --sim-gun``.

May import: every layer below it (up to :mod:`gunguard.assembly`).
"""
