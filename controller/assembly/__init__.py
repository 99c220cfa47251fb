"""The one assembly: config in, hardware drivers, supervisor, treatment book, firmware
link and plug-ins out, for ``gunguard run`` and ``gunguard simulate`` alike (only the
pin factory, the clock and the gun differ).

May import: every layer below it (hardware, core, config, store, link, operator).
"""
