"""Imports in core/ go one way (issue 12): no cycles, and each layer knows only those below.

The graph is read from the AST of every core/*.py file, counting every ``import`` and
``from ... import`` anywhere in the file (inside functions too, since a lazy import is still
a dependency). Written by hand rather than with import-linter: the rules are a handful of
prefix checks, and a hand-built graph also sees imports inside functions.

``from core.pkg import name`` points at ``core.pkg.name`` when that is a module, else at the
module the package's ``__init__`` re-exports ``name`` from, else at the package itself; a
module importing ``core.a.b`` is not counted as importing the package ``core.a``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"

# (layer, layers it must not import). A layer is a module or package prefix.
FORBIDDEN = [
    ("core.diffusion", ("core.generators", "core.train", "core.study", "core.study", "core.jobs", "core.jobs.runners")),
    ("core.generators", ("core.train", "core.jobs", "core.jobs.runners", "core.study", "core.study", "core.generators.balance")),
    ("core.train", ("core.generators.balance", "core.generators", "core.jobs", "core.jobs.runners", "core.study", "core.study")),
    ("core.jobs", ("core.jobs.runners",)),
]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, tuple[str, ...], int]]:
    """(imported module, names taken from it, line) for every import statement in a tree."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: strip `level` parts from this module's package
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            out.append((base, tuple(a.name for a in node.names), node.lineno))
    return out


def import_graph(root: Path = ROOT, package: str = "core") -> dict[str, dict[str, int]]:
    """module -> {imported core module: first line}, imports anywhere in the file."""
    files = {_module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    trees = {m: ast.parse(p.read_text(), filename=str(p)) for m, p in files.items()}
    raw = {m: _imports(t, m, files[m].name == "__init__.py") for m, t in trees.items()}
    # what each package __init__ re-exports, and from where: {package: {name: module}}
    reexports = {m: {n: src for src, names, _ in raw[m] for n in names} for m, p in files.items() if p.name == "__init__.py"}

    def resolve(target: str, name: str | None, seen: frozenset = frozenset()) -> str:
        if name is None:
            return target
        if f"{target}.{name}" in files:
            return f"{target}.{name}"
        src = reexports.get(target, {}).get(name)
        if src and src in files and src not in seen:
            return resolve(src, name, seen | {target})
        return target

    graph: dict[str, dict[str, int]] = {}
    for m, imports in raw.items():
        edges = graph.setdefault(m, {})
        for target, names, line in imports:
            if not _under(target, package):
                continue
            for dep in {resolve(target, n) for n in names} if names else {target}:
                if dep in files and dep != m:
                    edges[dep] = min(line, edges.get(dep, line))
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {m: WHITE for m in graph}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = GREY
        stack.append(m)
        for dep in sorted(graph.get(m, {})):
            if colour.get(dep, BLACK) == GREY:
                return stack[stack.index(dep):] + [dep]
            if colour.get(dep) == WHITE:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        colour[m] = BLACK
        return None

    for m in sorted(graph):
        if colour[m] == WHITE:
            found = visit(m)
            if found:
                return found
    return None


def layer_violations(graph: dict[str, dict[str, int]], rules=FORBIDDEN) -> list[str]:
    bad = []
    for layer, forbidden in rules:
        for m, deps in sorted(graph.items()):
            if not _under(m, layer):
                continue
            for dep, line in sorted(deps.items()):
                if any(_under(dep, f) for f in forbidden):
                    bad.append(f"{m} (line {line}) imports {dep}: {layer} must not import {', '.join(forbidden)}")
    return bad


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def _describe(cycle: list[str], graph) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def test_no_import_cycles_in_core(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in core/: " + _describe(cycle, graph)


def test_layers_import_only_downwards(graph):
    bad = layer_violations(graph)
    assert not bad, "imports that run back up:\n" + "\n".join(bad)


def test_graph_sees_lazy_relative_and_reexported_imports(tmp_path):
    """The checker itself: a function-level import, a relative import and a package
    re-export each make an edge, and a cycle through them is found and named."""
    pkg = tmp_path / "core"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("from core.low.base import thing\n")
    (pkg / "low" / "base.py").write_text("def thing():\n    from ..high import run\n    return run\n")
    (pkg / "high.py").write_text("from core.low import thing\n\ndef run():\n    return thing\n")
    g = import_graph(tmp_path)
    assert g["core.low.base"] == {"core.high": 2}  # lazy + relative
    assert g["core.high"] == {"core.low.base": 1}  # through the package's re-export
    assert g["core.low"] == {"core.low.base": 1}
    assert find_cycle(g) == ["core.high", "core.low.base", "core.high"]
    assert layer_violations(g, [("core.low", ("core.high",))]) == [
        "core.low.base (line 2) imports core.high: core.low must not import core.high"]
    (pkg / "low" / "base.py").write_text("def thing():\n    return 1\n")
    g = import_graph(tmp_path)
    assert find_cycle(g) is None and layer_violations(g, [("core.low", ("core.high",))]) == []
