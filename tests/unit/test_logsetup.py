"""Journal and terminal log formats: priority prefixes, one event per line."""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from gunguard.service.logsetup import (
    OneLineFormatter,
    flush_logging,
    is_journal_stream,
    journal_datagram,
    setup_logging,
    stop_logging,
    syslog_priority,
)


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    stop_logging()
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logging.captureWarnings(False)


def open_stream(tmp_path: Path) -> TextIO:
    return (tmp_path / "stderr").open("w+", encoding="utf-8")


def journal_env(stream: TextIO) -> dict[str, str]:
    st = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def lines_of(stream: TextIO) -> list[str]:
    flush_logging()
    stream.flush()
    stream.seek(0)
    return stream.read().splitlines()


def test_priority_mapping() -> None:
    assert syslog_priority(logging.CRITICAL) == 2
    assert syslog_priority(logging.ERROR) == 3
    assert syslog_priority(logging.WARNING) == 4
    assert syslog_priority(logging.INFO) == 6
    assert syslog_priority(logging.DEBUG) == 7
    assert syslog_priority(logging.INFO + 5) == 6  # custom levels round down
    assert syslog_priority(logging.NOTSET) == 7


def test_journal_lines_have_priority_and_no_timestamp(tmp_path: Path, restore_root: None) -> None:
    with open_stream(tmp_path) as stream:
        assert setup_logging(verbose=True, stream=stream, environ=journal_env(stream)) is True
        log = logging.getLogger("gunguard.test")
        log.debug("tick")
        log.info("armed")
        log.warning("force high")
        log.error("trip: rate_cap rate=2600 ppm limit=2400 ppm")
        log.critical("power cut failed")
        assert lines_of(stream) == [
            "<7>gunguard.test: tick",
            "<6>gunguard.test: armed",
            "<4>gunguard.test: force high",
            "<3>gunguard.test: trip: rate_cap rate=2600 ppm limit=2400 ppm",
            "<2>gunguard.test: power cut failed",
        ]


def test_traceback_stays_on_one_journal_line(tmp_path: Path, restore_root: None) -> None:
    with open_stream(tmp_path) as stream:
        setup_logging(verbose=False, stream=stream, environ=journal_env(stream))
        log = logging.getLogger("gunguard.test")
        try:
            raise RuntimeError("sensor gone\nsecond line")
        except RuntimeError:
            log.exception("control loop failed\nwhile reading")
        lines = lines_of(stream)
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("<3>gunguard.test: control loop failed\\nwhile reading | Traceback")
    assert "RuntimeError: sensor gone\\nsecond line" in line
    assert line.endswith("RuntimeError: sensor gone\\nsecond line")


def test_terminal_format_has_time_and_level(tmp_path: Path, restore_root: None) -> None:
    with open_stream(tmp_path) as stream:
        assert setup_logging(verbose=False, stream=stream, environ={}) is False
        log = logging.getLogger("gunguard.test")
        log.debug("hidden without -v")
        log.info("idle\nstill idle")
        lines = lines_of(stream)
    assert len(lines) == 1
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} INFO     gunguard\.test: idle\\nstill idle", lines[0]
    ), lines[0]


def test_verbose_selects_debug(tmp_path: Path, restore_root: None) -> None:
    with open_stream(tmp_path) as stream:
        setup_logging(verbose=True, stream=stream, environ={})
        logging.getLogger("gunguard.test").debug("visible")
        (line,) = lines_of(stream)
    assert line.endswith("DEBUG    gunguard.test: visible")


def test_journal_stream_must_match_the_stream(tmp_path: Path) -> None:
    with open_stream(tmp_path) as stream, (tmp_path / "other").open("w") as other:
        env = journal_env(other)  # inherited variable, but stderr goes elsewhere
        assert is_journal_stream(stream, env) is False
        assert is_journal_stream(stream, journal_env(stream)) is True
        assert is_journal_stream(stream, {"JOURNAL_STREAM": "garbage"}) is False
        assert is_journal_stream(stream, {}) is False


def test_second_call_replaces_its_handler(tmp_path: Path, restore_root: None) -> None:
    with open_stream(tmp_path) as stream:
        env = journal_env(stream)
        setup_logging(verbose=False, stream=stream, environ=env)
        setup_logging(verbose=False, stream=stream, environ=env)
        logging.getLogger("gunguard.test").info("once")
        assert lines_of(stream) == ["<6>gunguard.test: once"]


def test_python_warnings_are_logged_as_one_line(tmp_path: Path, restore_root: None) -> None:
    with open_stream(tmp_path) as stream:
        setup_logging(verbose=False, stream=stream, environ=journal_env(stream))
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("Falling back from lgpio: no gpiochip", UserWarning, stacklevel=1)
        lines = lines_of(stream)
    assert len(lines) == 1
    assert lines[0].startswith("<4>py.warnings: ")
    assert "UserWarning: Falling back from lgpio: no gpiochip" in lines[0]


def test_formatter_is_usable_alone() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "a\r\nb %d", (1,), None)
    assert OneLineFormatter(journal=True).format(record) == "<4>x: a\\r\\nb 1"


def test_under_journald_records_go_native_with_structured_fields(tmp_path: Path, restore_root):
    import socket as socketlib

    path = tmp_path / "journal.sock"
    journald = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    journald.bind(str(path))
    journald.settimeout(5)
    try:
        with open_stream(tmp_path) as stream:
            assert setup_logging(
                verbose=False, stream=stream, environ=journal_env(stream), journal_socket=str(path)
            )
            fields = {"GUNGUARD_REASON": "overspeed", "GUNGUARD_REGION": "calf-left"}
            logging.getLogger("gunguard.core.supervisor").error(
                "TRIP %s: %s", "overspeed", "measured 2602 ppm", extra={"journal": fields}
            )
            try:
                raise RuntimeError("two\nlines")
            except RuntimeError:
                logging.getLogger("gunguard.test").exception("failed")
            flush_logging()
            trip = journald.recv(65536)
            failure = journald.recv(65536)
            assert lines_of(stream) == []  # nothing on the stream: all native
    finally:
        journald.close()
    entry = dict(line.split(b"=", 1) for line in trip.split(b"\n") if b"=" in line)
    assert entry[b"MESSAGE"] == b"TRIP overspeed: measured 2602 ppm"
    assert entry[b"PRIORITY"] == b"3"
    assert entry[b"SYSLOG_IDENTIFIER"] == b"gunguard"
    assert entry[b"GUNGUARD_LOGGER"] == b"gunguard.core.supervisor"
    assert (entry[b"GUNGUARD_REASON"], entry[b"GUNGUARD_REGION"]) == (b"overspeed", b"calf-left")
    message = next(line for line in failure.split(b"\n") if line.startswith(b"MESSAGE="))
    assert message.startswith(b"MESSAGE=failed | Traceback")  # one line, newlines escaped
    assert message.endswith(b"RuntimeError: two\\nlines")


def test_the_binary_safe_form_for_a_value_with_a_newline():
    record = logging.LogRecord("gunguard.x", logging.WARNING, "f.py", 3, "m", None, None)
    record.journal = {"GUNGUARD_DETAIL": "a\nb"}  # type: ignore[attr-defined]
    data = journal_datagram(record, "m")
    assert b"GUNGUARD_DETAIL\n" + (3).to_bytes(8, "little") + b"a\nb\n" in data
    assert b"MESSAGE=m\n" in data


def test_logging_from_the_loop_only_enqueues(tmp_path: Path, restore_root):
    """A writer that blocks (a full pipe, a stuck journal) never blocks the logger."""
    import threading

    gate = threading.Event()

    class Stuck(TextIO):  # type: ignore[misc]
        def write(self, text: str) -> int:
            gate.wait(10)
            return len(text)

        def flush(self) -> None:
            pass

        def fileno(self) -> int:
            raise OSError("not a file")

    setup_logging(verbose=False, stream=Stuck(), environ={})
    returned = threading.Event()

    def log_from_the_loop() -> None:
        for _ in range(100):
            logging.getLogger("gunguard.test").error("trip")
        returned.set()

    threading.Thread(target=log_from_the_loop, daemon=True).start()
    try:
        # The writer is stuck on the first line; every call must still have returned.
        assert returned.wait(20), "logging waited for the writer"
    finally:
        gate.set()
