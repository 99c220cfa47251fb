"""docs/config.md and the JSON Schema say the same thing: one text per key.

Each key's *Meaning* in the tables of docs/config.md is the pydantic field's
``description`` (which ``gunguard schema`` gives to editors), with the markdown links
reduced to their text. Every key of the model has a row, every row a key.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gunguard.config.schema import GunguardConfig

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "config.md"
#: Sections whose rows name keys relative to the section (``tachometer.pin``).
SECTIONS = {"hardware", "loop", "limits", "screening"}
#: Groups of keys that are headings in the document rather than rows of a table.
GROUPS = {
    ("hardware",),
    ("hardware", "tachometer"),
    ("hardware", "force_sensor"),
    ("hardware", "motor_power"),
    ("loop",),
    ("limits",),
    ("regions",),
    ("screening",),
    ("storage",),
    ("control_socket",),
    ("realtime",),
}
_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")


def plain(markdown: str) -> str:
    """A table cell as the schema carries it: links reduced to their text."""
    return _LINK.sub(r"\1", markdown).strip()


def documented() -> dict[tuple[str, ...], str]:
    """Key path (``regions`` rows under ``('regions', '*')``) -> its Meaning cell."""
    rows: dict[tuple[str, ...], str] = {}
    section: tuple[str, ...] = ()
    body = DOC.read_text().split("## Every key", 1)[1].split("### Fixed values", 1)[0]
    for line in body.splitlines():
        heading = re.match(r"### `([a-z_]+)`$", line)
        if heading:
            name = heading.group(1)
            section = (name,) if name in SECTIONS else ("regions", "*") if name == "regions" else ()
            continue
        if line.startswith("### "):
            section = ()
            continue
        row = re.match(r"\| `([^`]+)` \|", line)
        if not row:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        key = tuple(part for part in row.group(1).replace("[]", "").split("."))
        rows[(*section, *key)] = plain(cells[-1])
    return rows


def _models(annotation: object) -> list[type[BaseModel]]:
    """The models inside an annotation (``SerialConfig | None``, ``tuple[Band, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def fields(
    model: type[BaseModel] = GunguardConfig, at: tuple[str, ...] = ()
) -> dict[tuple[str, ...], FieldInfo]:
    """Every key of the model, nested ones included (regions under ``('regions', '*')``)."""
    out: dict[tuple[str, ...], FieldInfo] = {}
    for name, info in model.model_fields.items():
        path = (*at, name)
        out[path] = info
        inner = (*path, "*") if name == "regions" and not at else path
        for sub in _models(info.annotation):
            out.update(fields(sub, inner))
    return out


def test_every_key_has_a_description_and_a_row_with_the_same_text():
    rows = documented()
    keys = fields()
    missing_description = [k for k, f in keys.items() if not f.description]
    assert missing_description == []
    # A region's own bands are limits.bands' model: their rows are those of limits.bands.
    own_bands = {k for k in keys if k[:3] == ("regions", "*", "bands") and len(k) == 4}
    assert all(keys[k] is keys[("limits", "bands", k[3])] for k in own_bands)
    assert sorted(set(keys) - set(rows) - GROUPS - own_bands) == [], "keys without a row"
    assert sorted(set(rows) - set(keys)) == [], "rows of docs/config.md that are no key"
    for key, meaning in rows.items():
        assert keys[key].description == meaning, ".".join(key)


@pytest.mark.parametrize("key", sorted(GROUPS), ids=".".join)
def test_the_groups_have_a_description_for_editors(key):
    assert fields()[key].description
