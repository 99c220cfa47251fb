"""What people see and touch: the control socket and its protocol, the CLI clients
(status, region, reset, stop, watch), the dashboard, history and reports, event
formatting, and the physical button, buzzer and LED.

May import: :mod:`gunguard.hardware`, :mod:`gunguard.core`, :mod:`gunguard.config`,
:mod:`gunguard.store`, :mod:`gunguard.link`.
"""
