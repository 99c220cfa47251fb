"""The README's pictures are drawn from the current code (``make pictures``).

Drawing them is not a test; this compares the digest of their inputs (the script, the
shipped configs, the demo, the dashboard, the advice table and the report) with the
one recorded when they were last drawn.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PICTURES = REPO / "docs" / "pictures"


def _script():  # tools/ is not a package: load the script as a module
    spec = importlib.util.spec_from_file_location("pictures", REPO / "tools" / "pictures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pictures_are_drawn_from_the_current_inputs():
    recorded = (PICTURES / "inputs.sha256").read_text().strip()
    assert recorded == _script().inputs_digest(REPO), "stale pictures: run `make pictures`"


def test_the_readme_shows_every_picture():
    readme = (REPO / "README.md").read_text()
    for name in ("wiring.svg", "dashboard.svg", "report.png"):
        assert (PICTURES / name).is_file(), name
        assert f"docs/pictures/{name}" in readme, name
