"""Logging for the journal and for a terminal, written off the control loop's threads.

Every record goes into a queue; one thread (``gunguard-log``) formats and writes it.
So logging a trip from the loop or the tach edge thread costs an append, and a slow
journal or a full pipe can never stall a tick.

Under systemd (stderr is the stream ``JOURNAL_STREAM`` names) records go to journald's
native socket, one entry each, with structured fields: ``PRIORITY``, ``MESSAGE``,
``SYSLOG_IDENTIFIER=gunguard``, ``GUNGUARD_LOGGER``, the code location, and whatever a
record carries in ``extra={"journal": {...}}`` (trips, refusals and warnings carry
``GUNGUARD_EVENT``, ``GUNGUARD_REASON``, ``GUNGUARD_REGION``, ``GUNGUARD_DETAIL`` and
the measured values). Without the socket they go to stderr as one line each with an
``<N>`` priority prefix (journald reads it; it adds its own timestamp). On a terminal
the lines carry the time. Either way newlines inside a message or a traceback are
escaped as ``\\n``, so one event is one entry and a trip is never split.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import struct
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

#: Where journald listens for native-protocol datagrams (systemd.journal-fields(7)).
JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "gunguard"

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


def journal_datagram(record: logging.LogRecord, message: str) -> bytes:
    """One record in journald's native protocol: ``KEY=value`` lines, and the binary-safe
    form (``KEY``, newline, 64-bit little-endian length, value, newline) for a value
    that holds a newline."""
    fields: dict[str, Any] = {
        "MESSAGE": message,
        "PRIORITY": syslog_priority(record.levelno),
        "SYSLOG_IDENTIFIER": IDENTIFIER,
        "GUNGUARD_LOGGER": record.name,
        "CODE_FILE": record.pathname,
        "CODE_LINE": record.lineno,
        "CODE_FUNC": record.funcName,
    }
    fields.update(getattr(record, "journal", None) or {})
    out = bytearray()
    for key, value in fields.items():
        if value is None:
            continue
        data = str(value).encode("utf-8", "replace")
        name = key.upper().encode("ascii", "replace")
        if b"\n" in data:
            out += name + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """Sends each record to journald's native socket; falls back to ``fallback``."""

    def __init__(self, path: str, fallback: logging.Handler) -> None:
        super().__init__()
        self._path = path
        self._fallback = fallback
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = _one_line(_message_text(self, record))
            self._sock.sendto(journal_datagram(record, message), self._path)
        except OSError:
            self._fallback.handle(record)  # too large, or journald gone: the stream
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._sock.close()
        self._fallback.close()
        super().close()


def _message_text(handler: logging.Handler, record: logging.LogRecord) -> str:
    """The message with its traceback (``exc_text``) and stack, as the formatter joins them."""
    parts = [record.getMessage()]
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return " | ".join(parts)


class _LogWriter(threading.Thread):
    """The one thread that writes log records: the loop's threads only enqueue them."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__(name="gunguard-log", daemon=True)
        self.handler = handler
        self.queue: queue.SimpleQueue[logging.LogRecord | threading.Event | None] = (
            queue.SimpleQueue()
        )

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            with contextlib.suppress(Exception):  # a broken stream must not end logging
                self.handler.handle(item)

    def flush(self, timeout: float = 5.0) -> None:
        done = threading.Event()
        self.queue.put(done)
        done.wait(timeout)

    def stop(self) -> None:
        self.queue.put(None)
        self.join(5.0)
        self.handler.close()


class _QueueHandler(logging.Handler):
    """Marks the handler setup_logging installed; enqueues records for the writer."""

    def __init__(self, writer: _LogWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and not record.exc_text:
            # The traceback's frames must be read on this thread, before they change.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
        record.msg = record.getMessage()  # the arguments may change after this returns
        record.args = None
        self.writer.queue.put(record)


_writer: _LogWriter | None = None


def setup_logging(
    verbose: bool,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    journal_socket: str = JOURNAL_SOCKET,
) -> bool:
    """Configure the root logger; returns True when writing for the journal.

    ``verbose`` (``-v``) selects DEBUG, else INFO. Records are written by the
    ``gunguard-log`` thread (:func:`flush_logging` waits for it, :func:`stop_logging`
    ends it). Python warnings (e.g. gpiozero's pin-factory fallback) are routed
    through logging. Calling it again replaces what it installed and leaves other
    handlers alone.
    """
    global _writer
    out = sys.stderr if stream is None else stream
    journal = is_journal_stream(out, environ)
    stream_handler = logging.StreamHandler(out)
    stream_handler.setFormatter(OneLineFormatter(journal=journal))
    handler: logging.Handler = stream_handler
    if journal and os.path.exists(journal_socket):
        handler = JournalHandler(journal_socket, stream_handler)
    stop_logging()
    _writer = _LogWriter(handler)
    _writer.start()
    root = logging.getLogger()
    root.addHandler(_QueueHandler(_writer))
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)
    return journal


def flush_logging() -> None:
    """Wait until every record logged so far is written."""
    if _writer is not None:
        _writer.flush()


def stop_logging() -> None:
    """Write what is queued, then remove the handler :func:`setup_logging` installed."""
    global _writer
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _QueueHandler)]:
        root.removeHandler(old)
    if _writer is not None:
        _writer.stop()
        _writer = None
