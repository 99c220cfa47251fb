"""Reading a plan file: the config's YAML reader (safe, line numbers, duplicate keys),
shipped plans by name, every problem with file, line and key.

A plan is kept in the store as the text it was adopted from (:mod:`gunguard.store.plans`),
so :func:`parse_plan` reads a stored document exactly as :func:`load_plan` reads a file.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from gunguard.config.loader import (
    MISSING,
    ConfigError,
    LocatedProblem,
    ShippedFiles,
    YamlLines,
    parse_yaml,
)
from gunguard.plan.schema import Plan


@dataclass(frozen=True)
class LoadedPlan:
    """A valid plan file and what it was read from."""

    plan: Plan
    name: str  # the file's stem (a shipped plan's name)
    source: str  # the path read (or where a stored document came from)
    document: str  # the text, comments included
    lines: YamlLines
    hash: str  # the plan's fingerprint (its content, not its comments)

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        return self.lines.line_of(path)


SHIPPED_PLANS = ShippedFiles("plans", "plans", "plan")


def shipped_dir() -> Path:
    """The shipped plans: inside the wheel (``gunguard/plans``), or ``plans/`` in a checkout."""
    return SHIPPED_PLANS.folder()


def shipped_names() -> list[str]:
    return SHIPPED_PLANS.names()


def resolve(name_or_path: str, relative_to: Path | None = None) -> Path:
    """A path to an existing file, or a shipped plan's name (``achilles-calf-4-weeks``)."""
    return SHIPPED_PLANS.find(name_or_path, relative_to)


def load_plan(name_or_path: str, relative_to: Path | None = None) -> LoadedPlan:
    """A plan file or shipped name, validated (:class:`ConfigError` lists every problem)."""
    path = resolve(name_or_path, relative_to)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [LocatedProblem(str(path), None, (), MISSING, f"cannot read: {exc}")]
        ) from None
    return parse_plan(text, str(path), path.stem)


def parse_plan(document: str, source: str, name: str) -> LoadedPlan:
    """A plan from its text; errors located in ``source``.

    Remembered for a few documents (the result is immutable and depends only on the
    arguments): every start reads the adopted plan again, and in virtual time a
    four-week plan has a reboot every morning.
    """
    return _parse_plan(document, source, name)


@functools.lru_cache(maxsize=8)
def _parse_plan(document: str, source: str, name: str) -> LoadedPlan:
    data, lines = parse_yaml(document, source)
    if not isinstance(data, dict):
        raise ConfigError(
            [LocatedProblem(source, 1, (), MISSING, "a plan is a mapping of keys (docs/plans.md)")]
        )
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        problems = []
        errors = exc.errors()
        paths = [tuple(e["loc"]) for e in errors]
        for err in errors:
            path = tuple(err["loc"])
            if err["type"] == "too_short" and any(
                len(p) > len(path) and p[: len(path)] == path for p in paths
            ):
                continue  # (pydantic's echo of a bad item: "at least 1 item ... not 0")
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key (check the spelling; docs/plans.md lists every key)"
            elif err["type"] == "missing":
                message = "required (docs/plans.md)"
            value = err.get("input", MISSING)
            if err["type"] == "missing" or _nested(value):
                value = MISSING  # (a whole mapping is no help: the line and key say where)
            problems.append(LocatedProblem(source, lines.line_of(path), path, value, message))
        raise ConfigError(problems) from None
    return LoadedPlan(plan, name, source, document, lines, plan_hash(plan))


def _nested(value: object) -> bool:
    if isinstance(value, dict):
        return True
    return isinstance(value, list | tuple) and any(isinstance(v, dict | list) for v in value)


def plan_hash(plan: Plan) -> str:
    """A short fingerprint of what the plan prescribes (comments do not change it)."""
    canonical = json.dumps(plan.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
