"""The daemon (``gunguard run``): start-up order, signals, systemd notify and watchdog,
reload, logging to the journal, real-time scheduling, the loop watchdog thread and
the event dispatcher thread; and ``gunguard calibrate``, which needs the daemon's rig
(daemon stopped) or its control socket (daemon running).

May import: every layer below it (up to :mod:`gunguard.sim`, for ``--sim-gun``).
"""
