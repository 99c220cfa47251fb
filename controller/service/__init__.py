"""The daemon (``gunguard run``): start-up order, signals, systemd notify and watchdog,
reload, logging to the journal, real-time scheduling, the loop watchdog thread and
the event dispatcher thread.

May import: every layer below it (up to :mod:`gunguard.sim`, for ``--sim-gun``).
"""
