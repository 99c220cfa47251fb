"""The safety core: sensors in, one power decision out.

Holds: the supervisor (the one power decision and the one latched trip), the
built-in ceilings and the resolved limits, rate measurement, dose, admission and
region rules, reason codes, events and their bus, clocks, and the real-time loop.
No I/O and no threads of its own: drivers, storage and listeners are injected.

May import: the standard library only; nothing else from gunguard.
"""
