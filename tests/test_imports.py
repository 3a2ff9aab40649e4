"""Imports in core/ go one way (issues 12 and 31): no cycles, and each layer imports only the layers
``docs/architecture.md`` says it may.

The layers are read from the table under "## Layers" in docs/architecture.md, so the map and the
code cannot drift apart: a row names its modules (a package stands for everything under it, the
most specific name wins, and ``core`` means the package's own ``__init__`` alone) and the layers
it may import, each of which must sit on an earlier row. There is no list of exceptions here.

The graph is read from the AST of every core/*.py file, counting every ``import`` and
``from ... import`` anywhere in the file (inside functions and ``TYPE_CHECKING`` blocks too,
since a lazy import is still a dependency). Written by hand rather than with import-linter: the
rules are a handful of prefix checks, and a hand-built graph also sees imports inside functions.

``from core.pkg import name`` points at ``core.pkg.name`` when that is a module, else at the
module the package's ``__init__`` re-exports ``name`` from, else at the package itself; a
module importing ``core.a.b`` is not counted as importing the package ``core.a``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
MAP = ROOT / "docs" / "architecture.md"


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


@dataclass(frozen=True)
class Layer:
    name: str
    modules: tuple[str, ...]  # `core.x` names: a package stands for its subtree; `core` for its __init__ alone
    may_import: tuple[str, ...]  # names of layers on earlier rows


def read_layers(text: str) -> list[Layer]:
    """The rows of the table under "## Layers" (columns: layer | modules | what it holds | may import)."""
    section = re.search(r"^## Layers.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if section is None:
        raise ValueError("docs/architecture.md has no '## Layers' section")
    rows = [ln for ln in section.group(1).splitlines() if ln.startswith("|")]
    if len(rows) < 3:
        raise ValueError("the '## Layers' section has no table")
    head = [c.strip().lower() for c in rows[0].strip("|").split("|")]
    if head[0] != "layer" or head[1] != "modules" or head[-1] != "may import":
        raise ValueError(f"the layer table's columns must be layer | modules | ... | may import, not {head}")
    out: list[Layer] = []
    for ln in rows[2:]:
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        name, modules, may = cells[0], tuple(re.findall(r"`(core[\w.]*)`", cells[1])), cells[-1]
        if not modules:
            raise ValueError(f"layer '{name}' names no `core...` module")
        allowed = () if may in ("", "—", "-", "nothing") else tuple(m.strip() for m in may.split(","))
        out.append(Layer(name, modules, allowed))
    names = [layer.name for layer in out]
    if len(set(names)) != len(names):
        raise ValueError(f"layer names repeat: {names}")
    for i, layer in enumerate(out):
        for m in layer.may_import:
            if m not in names[:i]:
                raise ValueError(f"layer '{layer.name}' may import '{m}', which is not a layer on an earlier row")
    return out


def layer_of(module: str, layers: list[Layer]) -> str | None:
    """The layer whose most specific name covers ``module`` (None: on no row)."""
    best, depth = None, -1
    for layer in layers:
        for m in layer.modules:
            covers = module == m if m == "core" else _under(module, m)
            if covers and m.count(".") > depth:
                best, depth = layer.name, m.count(".")
    return best


def layer_violations(graph: dict[str, dict[str, int]], layers: list[Layer]) -> list[str]:
    """Every module on no row, and every import of a layer that its importer's row does not allow."""
    by_name = {layer.name: layer for layer in layers}
    bad = [f"{m} is on no row of the layer table" for m in sorted(graph) if layer_of(m, layers) is None]
    for m, deps in sorted(graph.items()):
        own = layer_of(m, layers)
        if own is None:
            continue
        for dep, line in sorted(deps.items()):
            theirs = layer_of(dep, layers)
            if theirs is not None and theirs != own and theirs not in by_name[own].may_import:
                bad.append(f"{m} (line {line}) imports {dep}: layer '{own}' may import only {', '.join(by_name[own].may_import) or 'nothing'}, "
                           f"not '{theirs}'")
    return bad


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def _describe(cycle: list[str], graph) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def test_no_import_cycles_in_core(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in core/: " + _describe(cycle, graph)


def test_layers_import_only_what_the_map_allows(graph):
    layers = read_layers(MAP.read_text())
    assert len(layers) >= 10 and layer_of("core.study.rows", layers) == "study" and layer_of("core", layers) == "base"
    bad = layer_violations(graph, layers)
    assert not bad, "imports that docs/architecture.md's layer table does not allow:\n" + "\n".join(bad)


def test_the_map_names_every_package_and_core_keeps_six_top_level_modules():
    """Every package under core/ is a row of its own (or inside one), each says its one concern in its
    __init__ docstring, and core/ keeps at most 6 top-level modules (issue 31)."""
    layers = read_layers(MAP.read_text())
    top = sorted(p.stem for p in CORE.glob("*.py"))
    assert len(top) <= 6, top
    for init in sorted(CORE.rglob("__init__.py")):
        pkg = _module_name(init, ROOT)
        assert layer_of(pkg, layers) is not None, f"{pkg} is on no row of docs/architecture.md's layer table"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 5, f"{init.relative_to(ROOT)} needs a docstring stating its package's one concern"


TABLE = """# map

## Layers, bottom to top

| layer | modules | holds | may import |
|---|---|---|---|
| base | `core`, `core.low` | the floor | — |
| high | `core.high` | the top | base |

## Next
"""


def test_graph_sees_lazy_relative_and_reexported_imports(tmp_path):
    """The checker itself: a function-level import, a relative import and a package
    re-export each make an edge, a cycle through them is found and named, and the layer
    table read from a document forbids the upward edge."""
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
    layers = read_layers(TABLE)
    assert [(x.name, x.modules, x.may_import) for x in layers] == [("base", ("core", "core.low"), ()), ("high", ("core.high",), ("base",))]
    assert layer_of("core.low.base", layers) == "base" and layer_of("core", layers) == "base" and layer_of("core.other", layers) is None
    assert layer_violations(g, layers) == [
        "core.low.base (line 2) imports core.high: layer 'base' may import only nothing, not 'high'"]
    (pkg / "low" / "base.py").write_text("def thing():\n    return 1\n")
    (pkg / "other.py").write_text("")
    g = import_graph(tmp_path)
    assert find_cycle(g) is None and layer_violations(g, layers) == ["core.other is on no row of the layer table"]


@pytest.mark.parametrize("table, problem", [
    (TABLE.replace("| base |", "| high |", 1), "layer names repeat"),
    (TABLE.replace("| base |\n", "| base, high |\n"), "not a layer on an earlier row"),
    (TABLE.replace("`core.high`", "high"), "names no `core...` module"),
    (TABLE.replace("## Layers", "## Floors"), "no '## Layers' section"),
    (TABLE.replace("may import |\n", "imports |\n"), "columns must be"),
])
def test_a_broken_layer_table_is_refused_naming_the_problem(table, problem):
    with pytest.raises(ValueError, match=problem):
        read_layers(table)
