"""The terminal transcripts in the docs are what the commands print today.

A user copies ``gunguard simulate rest.yaml`` from docs/scenarios.md and expects the
lines shown under it. Each fenced block of README.md and docs/*.md is read as a
transcript: ``$ cat NAME.yaml`` (or a YAML block whose first line is ``# NAME.yaml``)
writes a file, ``$ gunguard simulate …`` and ``$ gunguard check-config …`` run
in-process in a folder holding those files, and ``$ echo $?`` checks the exit status.
The lines shown must be the lines printed, in order: exactly, or, where the block
elides with ``...``, as a subsequence. JSON lines are compared as JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gunguard.cli import main

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: The subcommands a transcript may run here: pure, in virtual time, no daemon needed.
RUNNABLE = {"simulate", "check-config"}
_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
_NAMED_YAML = re.compile(r"^# ([\w.-]+\.yaml)\b")


@dataclass
class Command:
    line: str
    shown: list[str] = field(default_factory=list)


@dataclass
class Transcript:
    doc: str
    first_line: int
    files: dict[str, str]
    commands: list[Command]


@dataclass
class DocScenario:
    doc: str
    first_line: int
    text: str


def documented_scenarios() -> list[DocScenario]:
    """Every YAML block that is a whole scenario with expectations."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            body = match.group(1)
            whole = re.search(r"^steps:", body, re.M) and re.search(r"^expect:", body, re.M)
            if whole and not re.search(r"^\$ ", body, re.M):  # not a transcript's `cat`
                line_no = text.count("\n", 0, match.start()) + 2
                found.append(DocScenario(doc.name, line_no, body))
    return found


def transcripts() -> list[Transcript]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        files: dict[str, str] = {}  # a doc's files carry over from block to block
        for match in _FENCE.finditer(text):
            body = match.group(1)
            line_no = text.count("\n", 0, match.start()) + 2
            named = _NAMED_YAML.match(body)
            if named:
                files[named.group(1)] = body
                continue
            commands: list[Command] = []
            for line in body.splitlines():
                if line.startswith("$ "):
                    commands.append(Command(line[2:]))
                elif commands:
                    commands[-1].shown.append(line)
            for c in commands:  # `$ cat NAME.yaml` shows the file: later blocks use it too
                if c.line.startswith("cat "):
                    files[c.line.split()[1]] = "\n".join(c.shown) + "\n"
            if any(_runnable(c.line) and _files_shown(c.line, files) for c in commands):
                found.append(Transcript(doc.name, line_no, dict(files), commands))
    return found


def _runnable(line: str) -> bool:
    """A command this test runs: one of RUNNABLE, its output shown (not redirected)."""
    words = line.split()
    shown = ">" not in words
    return shown and len(words) > 1 and words[0] == "gunguard" and words[1] in RUNNABLE


def _files_shown(line: str, files: dict[str, str]) -> bool:
    """Every YAML file the command names is shown in the doc, or is in the repository
    (a transcript about a file the reader never sees, like a calibrated gun's, is prose)."""
    names = [w for w in shlex.split(line.split(" | ")[0]) if w.endswith(".yaml")]
    return all(n in files or (REPO / n).exists() for n in names)


def _same(shown: str, printed: str) -> bool:
    if shown.startswith("{") and printed.startswith("{"):
        try:
            return json.loads(shown) == json.loads(printed)
        except json.JSONDecodeError:
            pass
    return shown.rstrip() == printed.rstrip()


def assert_shown(shown: list[str], printed: list[str], where: str) -> None:
    shown = [line for line in shown if line.strip()]
    printed = [line for line in printed if line.strip()]
    elided = any(line.strip() == "..." for line in shown)
    if not elided:
        assert len(shown) == len(printed) and all(
            _same(a, b) for a, b in zip(shown, printed, strict=True)
        ), f"{where}: shown\n" + "\n".join(shown) + "\nprinted\n" + "\n".join(printed)
        return
    at = 0
    for line in shown:
        if line.strip() == "...":
            continue
        while at < len(printed) and not _same(line, printed[at]):
            at += 1
        assert at < len(printed), f"{where}: {line!r} is not printed (in order):\n" + "\n".join(
            printed
        )
        at += 1


def _pipe(lines: list[str], stage: str) -> list[str]:
    words = shlex.split(stage)
    if words[:2] == ["grep", "-E"]:
        return [line for line in lines if re.search(words[2], line)]
    if words[0] == "head":
        return lines[: int(words[1].lstrip("-n"))]
    raise AssertionError(f"a transcript pipes into {stage!r}: teach this test that command")


CASES = transcripts()


def test_the_docs_have_transcripts_to_check():
    assert {t.doc for t in CASES} >= {"scenarios.md", "config.md", "README.md"}


@pytest.mark.parametrize("transcript", CASES, ids=[f"{t.doc}:{t.first_line}" for t in CASES])
def test_a_transcript_prints_what_it_shows(transcript, tmp_path, monkeypatch):
    for name, text in transcript.files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    rc = None
    for command in transcript.commands:
        where = f"{transcript.doc}:{transcript.first_line}: $ {command.line}"
        if command.line == "echo $?":
            assert [str(rc)] == [s for s in command.shown if s.strip()], where
            continue
        if not (_runnable(command.line) and _files_shown(command.line, transcript.files)):
            continue
        stages = command.line.split(" | ")
        # One stream for both, in the order a terminal shows them; a pipe takes stdout
        # only (what stderr then prints is not part of the transcript).
        terminal = io.StringIO()
        err = terminal if len(stages) == 1 else io.StringIO()
        with contextlib.redirect_stdout(terminal), contextlib.redirect_stderr(err):
            rc = main(shlex.split(stages[0])[1:])
        printed = terminal.getvalue().splitlines()
        for stage in stages[1:]:
            printed = _pipe(printed, stage)
        assert_shown(command.shown, printed, where)


SCENARIOS = documented_scenarios()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{d.doc}:{d.first_line}" for d in SCENARIOS])
def test_a_documented_scenario_meets_its_expectations(scenario, tmp_path, monkeypatch):
    """A scenario shown in the docs does what its comments and ``expect:`` say: every
    expectation holds (exit 0), unless the doc shows it failing on purpose."""
    path = tmp_path / "scenario.yaml"
    path.write_text(scenario.text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    terminal = io.StringIO()
    with contextlib.redirect_stdout(terminal), contextlib.redirect_stderr(terminal):
        rc = main(["simulate", str(path)])
    assert rc == 0, f"{scenario.doc}:{scenario.first_line}\n{terminal.getvalue()}"
