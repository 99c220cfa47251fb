"""The package's layers: each subpackage imports only from the ones below it.

The rule is stated in gunguard/__init__.py and docs/architecture.md; this test reads
every import (including those inside functions) of every module in the source tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Who may import whom. A layer may always import itself.
ALLOWED: dict[str, set[str]] = {
    "hardware": set(),
    "core": set(),
    "config": {"core"},
    "store": {"core", "config"},
    "link": {"core", "config"},
    "plan": {"core", "config", "store"},
    "operator": {"hardware", "core", "config", "store", "link", "plan"},
    "assembly": {"hardware", "core", "config", "store", "link", "plan", "operator"},
    "sim": {"hardware", "core", "config", "store", "link", "plan", "operator", "assembly"},
    "service": {
        "hardware",
        "core",
        "config",
        "store",
        "link",
        "plan",
        "operator",
        "assembly",
        "sim",
    },
}
TOP = {"cli", "pytest_plugin", "__init__", "__main__"}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted((REPO / "controller").rglob("*.py")):
        rel = path.relative_to(REPO / "controller")
        layer = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        found.append((layer, path))
    for path in sorted((REPO / "hardware").rglob("*.py")):
        found.append(("hardware", path))
    return found


def _gunguard_imports(path: Path) -> set[str]:
    """The gunguard subpackages (or top modules) that ``path`` imports, anywhere in it."""
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "gunguard":
                names = [f"gunguard.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "gunguard" and len(parts) > 1:
                layers.add(parts[1])
            assert parts[0] not in ("controller", "hardware"), f"{path}: imports {name}"
    return layers


MODULES = _modules()


@pytest.mark.parametrize(
    ("layer", "path"), MODULES, ids=[str(p.relative_to(REPO)) for _, p in MODULES]
)
def test_imports_only_go_down(layer, path):
    if layer in TOP:
        return
    assert layer in ALLOWED, f"{path}: not in a known layer ({layer})"
    wrong = _gunguard_imports(path) - ALLOWED[layer] - {layer}
    assert not wrong, f"{path} ({layer}) imports {sorted(wrong)}: not below it"


def test_every_layer_says_what_it_may_import():
    for layer in ALLOWED:
        init = REPO / ("hardware" if layer == "hardware" else f"controller/{layer}")
        doc = ast.get_docstring(ast.parse((init / "__init__.py").read_text()))
        assert doc and "May import" in doc, f"{layer}/__init__.py must say what it may import"


def _module_name(path: Path) -> str:
    if path.is_relative_to(REPO / "hardware"):
        rel = ("hardware", *path.relative_to(REPO / "hardware").with_suffix("").parts)
    elif path.is_relative_to(REPO / "controller"):
        rel = path.relative_to(REPO / "controller").with_suffix("").parts
    else:
        return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    return ".".join(("gunguard", *rel)).removesuffix(".__init__")


def _graph(paths: list[Path]) -> dict[str, set[str]]:
    names = {_module_name(p): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            deps |= {t for t in targets if t in names and t != name}
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_between_modules():
    """Not even through imports inside functions: a cycle is a design knot."""
    paths = [p for _, p in MODULES] + sorted((REPO / "bench").glob("*.py"))
    cycle = _cycle(_graph(paths))
    assert cycle is None, " -> ".join(cycle or [])


def test_the_benchmarks_do_not_import_the_tests():
    for path in sorted((REPO / "bench").glob("*.py")):
        text = path.read_text()
        assert "tests." not in text and "import tests" not in text, path
