"""Reading a config file: safe YAML, line numbers, shipped names, readable errors.

Every error names the file, the YAML line, the field path, the value and the reason,
e.g. ``achilles.yaml:12: limits.bands[0].max_minutes = 6.0: loosens the built-in
ceiling ...``. ``check-config`` and ``run`` exit 2 with these lines.

A config may include a calibration file (``hardware.calibration``,
:mod:`gunguard.config.calibration`): :func:`load` merges its values over the config's
own before validating, and a problem with a merged value is located in that file.
A missing or invalid calibration file is a config error: gunguard does not run on
guessed calibration.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import ValidationError

from gunguard.config import calibration
from gunguard.config.schema import GunguardConfig, Problem, ceiling_problems, config_warnings
from gunguard.core.exits import Exit

#: Exit status for an invalid config or scenario (systemd's RestartPreventExitStatus).
EXIT_CONFIG = Exit.CONFIG


def format_path(path: tuple[str | int, ...]) -> str:
    """``('limits', 'bands', 0, 'max_minutes')`` -> ``limits.bands[0].max_minutes``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


@dataclass(frozen=True, slots=True)
class LocatedProblem:
    source: str
    line: int | None
    path: tuple[str | int, ...]
    value: Any
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        shown = "" if self.value is _MISSING else f" = {self.value!r}"
        return f"{where}: {format_path(self.path)}{shown}: {self.message}"


_MISSING = object()
#: A problem's value when there is none to show (a missing file, a syntax error).
MISSING = _MISSING


class ConfigError(Exception):
    """A file that must not be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[LocatedProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def error_lines(exc: ConfigError, what: str = "configuration") -> list[str]:
    """The one printed form of an invalid file: a headline, then each problem once."""
    return [
        f"gunguard: invalid {what} ({len(exc.problems)} problem(s)):",
        *(f"  {problem}" for problem in exc.problems),
    ]


def warning_lines(warnings: list[LocatedProblem]) -> list[str]:
    return [f"gunguard: warning: {warning}" for warning in warnings]


class YamlLines:
    """Maps a path in the document to the line it starts on (1-based)."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str | int, ...], int] = {}
        self.duplicates: list[tuple[tuple[str | int, ...], int]] = []

    def walk(self, node: yaml.Node, path: tuple[str | int, ...] = ()) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                key = key_node.value
                child = (*path, key)
                if key in seen:
                    self.duplicates.append((child, key_node.start_mark.line + 1))
                seen.add(key)
                self.lines[child] = key_node.start_mark.line + 1
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, (*path, i))

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """The line of ``path``, or of its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's booleans: only ``true`` and ``false``.

    YAML 1.1 also reads ``yes``, ``no``, ``on`` and ``off`` as booleans, but editors and
    JSON Schema validators (YAML 1.2) read them as strings. A safety answer must mean
    the same to both, so here they stay strings too, and a boolean key refuses them.
    """

    yaml_implicit_resolvers: ClassVar[dict[Any, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def parse_yaml(text: str, source: str) -> tuple[Any, YamlLines]:
    """Load ``text`` safely; a syntax error or duplicate key is a :class:`ConfigError`."""
    lines = YamlLines()
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [LocatedProblem(source, line, (), _MISSING, f"not valid YAML: {problem}")]
        ) from None
    if node is not None:
        lines.walk(node)
    if lines.duplicates:
        raise ConfigError(
            [
                LocatedProblem(source, line, path, _MISSING, "key given twice")
                for path, line in lines.duplicates
            ]
        )
    return data, lines


def _pydantic_problems(exc: ValidationError, data: Any) -> list[Problem]:
    problems = []
    for err in exc.errors():
        path = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function")))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see `gunguard schema`)"
        elif err["type"] == "bool_type":
            message = "must be true or false (yes, no, 0, 1 and quoted words are not answers)"
        problems.append(Problem(path, err.get("input", _MISSING), message))
    return problems


#: Config paths whose value came from an included file: (source, line, path there, note).
Moved = dict[tuple[str | int, ...], tuple[str, int | None, tuple[str | int, ...], str]]


def validate(
    data: Any,
    source: str,
    lines: YamlLines | None = None,
    today: dt.date | None = None,
    *,
    moved: Moved | None = None,
) -> GunguardConfig:
    """Turn loaded YAML into a config, or raise :class:`ConfigError` with every problem.

    ``moved``: values merged in from a calibration file, whose problems are located there.
    """
    lines = lines or YamlLines()
    moved = moved or {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [LocatedProblem(source, 1, (), _MISSING, "the file must be a mapping of keys")]
        )
    try:
        cfg = GunguardConfig.model_validate(data)
        problems = ceiling_problems(cfg, today)
    except ValidationError as exc:
        problems = _pydantic_problems(exc, data)
    if problems:
        located = []
        for p in problems:
            if p.path in moved:
                there, line, path, note = moved[p.path]
                located.append(LocatedProblem(there, line, path, p.value, f"{p.message} {note}"))
            else:
                located.append(
                    LocatedProblem(source, lines.line_of(p.path), p.path, p.value, p.message)
                )
        raise ConfigError(located)
    return cfg


@dataclass(frozen=True)
class ShippedFiles:
    """Files gunguard ships and finds by name: configs, plans, example scenarios.

    Inside the wheel they are ``gunguard/<packaged>/``, in a checkout ``<checkout>/``.
    A name without ``/`` that is no file names one of them (``.yaml`` optional).
    """

    packaged: str  # the folder inside the wheel's gunguard package
    checkout: str  # the folder at the root of a checkout
    kind: str  # what one is called in an error: config, plan, example

    def folder(self) -> Path:
        packaged = resources.files("gunguard") / self.packaged
        if packaged.is_dir():
            return Path(str(packaged))
        return Path(__file__).resolve().parents[2] / self.checkout

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder().glob("*.yaml"))

    def find(self, name_or_path: str, relative_to: Path | None = None) -> Path:
        """A path to an existing file (relative to ``relative_to`` if given), or a shipped
        file's name; :class:`ConfigError` naming the shipped ones otherwise."""
        candidate = Path(name_or_path).expanduser()
        if relative_to is not None and not candidate.is_absolute():
            candidate = relative_to / candidate
        if candidate.is_file():
            return candidate
        shipped = self.folder() / f"{name_or_path.removesuffix('.yaml')}.yaml"
        if "/" not in name_or_path and shipped.is_file():
            return shipped
        raise ConfigError(
            [
                LocatedProblem(
                    name_or_path,
                    None,
                    (),
                    _MISSING,
                    f"no such file, and not a shipped {self.kind} "
                    f"(shipped: {', '.join(self.names())})",
                )
            ]
        )


SHIPPED_CONFIGS = ShippedFiles("configs", "config", "config")


def shipped_dir() -> Path:
    """Where the shipped configs are: inside the wheel, or ``config/`` in a checkout."""
    return SHIPPED_CONFIGS.folder()


def shipped_names() -> list[str]:
    return SHIPPED_CONFIGS.names()


def resolve(name_or_path: str, relative_to: Path | None = None) -> Path:
    """A path to an existing file, or a shipped config's name (``achilles-tendinopathy``)."""
    return SHIPPED_CONFIGS.find(name_or_path, relative_to)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [LocatedProblem(str(path), None, (), _MISSING, f"cannot read: {exc}")]
        ) from None


def load(
    name_or_path: str, relative_to: Path | None = None, *, include_calibration: bool = True
) -> GunguardConfig:
    """Load and validate a config file or shipped name, with its calibration file merged.

    ``include_calibration=False`` (only ``gunguard calibrate``, which is about to
    replace the file): the config's own values, the calibration file not read.
    """
    return load_with_warnings(name_or_path, relative_to, include_calibration=include_calibration)[0]


def load_with_warnings(
    name_or_path: str, relative_to: Path | None = None, *, include_calibration: bool = True
) -> tuple[GunguardConfig, list[LocatedProblem]]:
    """:func:`load`, plus what the valid file probably does not mean (located warnings)."""
    path = resolve(name_or_path, relative_to)
    data, lines = parse_yaml(_read_text(path), str(path))
    moved: Moved = {}
    if include_calibration:
        data, moved = _include_calibration(data, lines, path)
    cfg = validate(data, str(path), lines, moved=moved)
    warnings = [
        LocatedProblem(str(path), lines.line_of(w.path), w.path, w.value, w.message)
        for w in config_warnings(cfg)
    ]
    return cfg, warnings


def calibration_path(cfg: GunguardConfig, config_path: Path) -> Path | None:
    """The calibration file ``cfg`` includes, as a path (None: it includes none)."""
    value = cfg.hardware.calibration
    return None if value is None else calibration.resolve_path(value, config_path)


def read_calibration(path: Path) -> tuple[calibration.CalibrationFile, YamlLines]:
    """A calibration file, parsed and checked (its values are bounded once merged)."""
    data, lines = parse_yaml(_read_text(path), str(path))
    try:
        cal = calibration.CalibrationFile.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(exc, data)
    else:
        problems = [
            Problem(at, _MISSING if value is None else value, why)
            for at, value, why in calibration.problems(cal)
        ]
        if not problems:
            return cal, lines
    raise ConfigError(
        [
            LocatedProblem(str(path), lines.line_of(p.path), p.path, p.value, p.message)
            for p in problems
        ]
    )


def _include_calibration(data: Any, lines: YamlLines, config_path: Path) -> tuple[Any, Moved]:
    """``data`` with the included calibration file's values merged over its own."""
    hardware = data.get("hardware") if isinstance(data, dict) else None
    value = hardware.get("calibration") if isinstance(hardware, dict) else None
    if not isinstance(value, str):
        return data, {}  # none, or not a string: the schema says so
    at = ("hardware", "calibration")
    source = str(config_path)
    if not value.strip():
        raise ConfigError(
            [LocatedProblem(source, lines.line_of(at), at, value, "must name a file")]
        )
    path = calibration.resolve_path(value, config_path)
    if not path.is_file():
        raise ConfigError(
            [
                LocatedProblem(
                    source,
                    lines.line_of(at),
                    at,
                    value,
                    f"no calibration file at {path}: gunguard does not run on guessed "
                    f"calibration. Create it with `gunguard calibrate --config {config_path}`, "
                    "or remove hardware.calibration to use this file's own force_sensor and "
                    "tachometer values",
                )
            ]
        )
    cal, cal_lines = read_calibration(path)
    assert isinstance(hardware, dict)
    hardware = dict(hardware)
    merged = {**data, "hardware": hardware}
    moved: Moved = {}
    for key, number in cal.values().items():
        target = calibration.KEYS[key]
        section = hardware.get(target[1])
        if section is None:
            section = {}
        if not isinstance(section, dict):
            continue  # the schema reports the section itself
        hardware[target[1]] = {**section, target[2]: number}
        note = f"(overrides {format_path(target)}; included by {source}:{lines.line_of(at)})"
        moved[target] = (str(path), cal_lines.line_of((key,)), (key,), note)
    return merged, moved


def config_hash(cfg: GunguardConfig) -> str:
    """A short fingerprint of the effective config, stored with every trip."""
    canonical = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
