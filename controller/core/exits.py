"""Exit statuses of every ``gunguard`` command: the one table (README, "Exit status").

systemd's unit lists :attr:`Exit.CONFIG` in ``RestartPreventExitStatus=`` (a bad file
is not restarted in a loop); scripts and tests read the others.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """What a command's exit status means, the same for every command."""

    #: Done.
    OK = 0
    #: The answer is no: a scenario expectation failed, the daemon refused (a region,
    #: a request), a selection tripped at once, nothing to report.
    NO = 1
    #: An invalid config or scenario file (or ``--config``): nothing was started.
    CONFIG = 2
    #: The hardware (GPIO, SPI, the control socket) could not be set up or driven.
    HARDWARE = 3
    #: Nothing to talk to or read: no daemon at the socket, an unreadable store.
    UNREACHABLE = 4
