"""The package's layout rules (STYLE.md): no import cycle between modules, layers point down.

The layer order is declared once, in the ``layers`` block of ``docs/architecture.md``; this module
reads it from there.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import cac_lightning

ROOT = Path(cac_lightning.__file__).resolve().parent
ARCHITECTURE = ROOT.parent / "docs" / "architecture.md"


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
            for target in targets:  # `from pkg import mod, name`: each module, else pkg itself
                if target in modules:
                    found.add(target)
                    if target == getattr(node, "module", None):
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


# -- packages and layers ---------------------------------------------------------------------


def _unit(module: str) -> str | None:
    """The layer unit of a module: its top package (``io``) or root module (``vessels``);
    None for ``cac_lightning`` itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _units() -> set[str]:
    """Every package and root module of cac_lightning (``conf`` holds no code)."""
    return {_unit(m) for m in _imports()} - {None}


def _package_imports(graph: dict[str, set[str]] | None = None) -> dict[str, dict[str, str]]:
    """Unit -> {imported unit: one importing module, as an example}, between different units."""
    out: dict[str, dict[str, str]] = {}
    for name, targets in sorted((graph or _imports()).items()):
        src = _unit(name)
        for target in sorted(targets):
            dst = _unit(target)
            if src and dst and dst != src:
                out.setdefault(src, {}).setdefault(dst, f"{name} imports {target}")
    return out


def parse_layers(text: str) -> list[list[str]]:
    """The layers declared in the ``layers`` block of ``docs/architecture.md``, top first.

    The block is the fenced block after the ``<!-- layers`` comment. A line whose first
    character is a letter declares a layer: names joined by ``|`` up to the first run of two
    spaces; other lines (arrows, continued descriptions) are drawing.
    """
    match = re.search(r"<!-- layers.*?-->\s*```[a-z]*\n(.*?)```", text, re.S)
    if not match:
        raise AssertionError("docs/architecture.md has no `<!-- layers ... -->` block")
    layers = []
    for line in match.group(1).splitlines():
        if line[:1].isalpha():
            names = re.split(r"\s{2,}", line.strip())[0]
            layers.append([n.strip() for n in names.split("|")])
    return layers


def _rank() -> dict[str, int]:
    layers = parse_layers(ARCHITECTURE.read_text())
    rank = {name: len(layers) - i for i, layer in enumerate(layers) for name in layer}
    assert len(rank) == sum(map(len, layers)), f"a name appears twice in {ARCHITECTURE}"
    return rank


def upward_imports(imports: dict[str, dict[str, str]], rank: dict[str, int]) -> list[str]:
    """Imports of a unit in the same or a higher layer, one line each."""
    return [
        f"{src} -> {dst} ({example})"
        for src, targets in sorted(imports.items())
        for dst, example in sorted(targets.items())
        if rank[dst] >= rank[src]
    ]


def two_way_ties(imports: dict[str, dict[str, str]]) -> list[str]:
    """Pairs of units that import each other, whatever the declared order."""
    return [
        f"{a} <-> {b} ({imports[a][b]}; {imports[b][a]})"
        for a in sorted(imports)
        for b in sorted(imports[a])
        if a < b and a in imports.get(b, {})
    ]


def test_every_package_has_a_declared_layer():
    rank = _rank()
    missing = sorted(_units() - set(rank))
    stale = sorted(set(rank) - _units())
    assert not missing, f"add {missing} to the layers block of docs/architecture.md"
    assert not stale, f"{stale} are declared in docs/architecture.md but do not exist"


def test_no_two_packages_import_each_other():
    ties = two_way_ties(_package_imports())
    assert not ties, "packages that import each other:\n" + "\n".join(ties)


def test_packages_import_only_layers_below():
    upward = upward_imports(_package_imports(), _rank())
    assert not upward, "imports of the same or a higher layer:\n" + "\n".join(upward)


def test_layer_rules_find_what_they_should():
    text = "<!-- layers -->\n```text\ncli   top\n │\na | b  pair\n │   more words\nbase\n```\n"
    assert parse_layers(text) == [["cli"], ["a", "b"], ["base"]]
    rank = {"cli": 3, "a": 2, "b": 2, "base": 1}
    graph = {
        "cac_lightning.a.x": {"cac_lightning.b", "cac_lightning.base"},
        "cac_lightning.b": {"cac_lightning.a.x"},
        "cac_lightning.base": {"cac_lightning.cli.main"},
        "cac_lightning.cli.main": {"cac_lightning.a.x"},
    }
    imports = _package_imports(graph)
    assert imports["a"]["b"] == "cac_lightning.a.x imports cac_lightning.b"
    assert [line.split(" (")[0] for line in upward_imports(imports, rank)] == [
        "a -> b",
        "b -> a",
        "base -> cli",
    ]
    assert [line.split(" (")[0] for line in two_way_ties(imports)] == ["a <-> b"]


def test_readme_links_the_layers():
    assert "(docs/architecture.md)" in (ROOT.parent / "README.md").read_text()
