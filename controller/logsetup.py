"""Logging for the journal and for a terminal.

Under systemd, stderr is a stream to journald (``JOURNAL_STREAM`` names it).
journald stores one entry per line and reads an ``<N>`` prefix as the syslog
priority, so each record becomes exactly one line with its priority and no
timestamp (journald adds its own). On a terminal the lines carry the time.
Either way newlines inside a message or a traceback are escaped as ``\\n``, so
one event is one line and a trip is never split across entries.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

# sd-daemon.h: SD_CRIT "<2>", SD_ERR "<3>", SD_WARNING "<4>", SD_INFO "<6>", SD_DEBUG "<7>".
_PRIORITIES = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG_PRIORITY = 7

TERMINAL_DATEFMT = "%H:%M:%S"


def syslog_priority(levelno: int) -> int:
    """The syslog priority for a logging level (custom levels round down)."""
    for threshold, priority in _PRIORITIES:
        if levelno >= threshold:
            return priority
    return _DEBUG_PRIORITY


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class OneLineFormatter(logging.Formatter):
    """Formats a record, traceback and stack included, as a single line.

    Journal: ``<6>name: message`` (journald adds time, unit and PID). Terminal:
    ``12:34:56.789 INFO     name: message``.
    """

    def __init__(self, *, journal: bool) -> None:
        super().__init__(datefmt=TERMINAL_DATEFMT)
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        """Escape newlines in the message and append the traceback on the same line."""
        parts = [record.getMessage()]
        if record.exc_info and not record.exc_text:
            # Cached like logging.Formatter does, so other handlers reuse it.
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        line = _one_line(" | ".join(parts))
        if self.journal:
            return f"<{syslog_priority(record.levelno)}>{record.name}: {line}"
        when = self.formatTime(record, self.datefmt)
        return f"{when}.{int(record.msecs):03d} {record.levelname:<8} {record.name}: {line}"


def is_journal_stream(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journald stream named by ``JOURNAL_STREAM``.

    systemd sets ``JOURNAL_STREAM=<dev>:<inode>`` of the stream it connected; a
    child whose stderr was redirected elsewhere inherits the variable but not the
    stream, so device and inode are compared, as systemd.exec(5) advises.
    """
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM")
    if not value:
        return False
    try:
        dev_text, ino_text = value.split(":", 1)
        dev, ino = int(dev_text), int(ino_text)
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == dev and st.st_ino == ino


class _GunguardHandler(logging.StreamHandler):
    """Marks the handler setup_logging installed, so a second call replaces it."""


def setup_logging(
    verbose: bool,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Configure the root logger; returns True when writing for the journal.

    ``verbose`` (``-v``) selects DEBUG, else INFO. Logs go to stderr, which Python
    line-buffers, so a line reaches journald as soon as it is written. Python
    warnings (e.g. gpiozero's pin-factory fallback) are routed through logging.
    Calling it again replaces the handler it installed and leaves others alone.
    """
    out = sys.stderr if stream is None else stream
    journal = is_journal_stream(out, environ)
    formatter = OneLineFormatter(journal=journal)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _GunguardHandler)]:
        root.removeHandler(old)
    handler = _GunguardHandler(out)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)
    return journal
