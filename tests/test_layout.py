"""The package's layout rules (STYLE.md): no import cycle between modules, layers point down."""

from __future__ import annotations

import ast
from pathlib import Path

import cac_lightning

ROOT = Path(cac_lightning.__file__).resolve().parent


def _module(path: Path) -> str:
    parts = ["cac_lightning", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _third_party(path: Path) -> set[str]:
    """Top-level names of everything ``path`` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
    return names


def _imports() -> dict[str, set[str]]:
    """Every cac_lightning module -> the cac_lightning modules it imports, anywhere in its body
    (lazy imports inside functions included: a cycle through them is still a cycle)."""
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target in modules:
                    found.add(target)
                    break
        found.discard(name)
        graph[name] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    assert _cycle(_imports()) is None


def test_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_layers_point_down():
    graph = _imports()
    for name, targets in graph.items():
        if not name.startswith("cac_lightning.cli"):
            assert not any(t.startswith("cac_lightning.cli") for t in targets), name
        if name.startswith(("cac_lightning.scoring", "cac_lightning.io")):
            below = ("cac_lightning.models", "cac_lightning.callbacks", "cac_lightning.inference")
            assert not any(t.startswith(below) for t in targets), name


def test_scoring_and_io_know_nothing_of_torch():
    for package in ("scoring", "io"):
        for path in (ROOT / package).rglob("*.py"):
            assert not _third_party(path) & {"torch", "lightning"}, path
