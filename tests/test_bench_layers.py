"""``benchmarks/`` is layered: a module imports only modules of lower layers.

Workloads describe work, backends run it, the report reads results. Every import counts,
also one inside a function or under ``TYPE_CHECKING`` (that is how the old circle hid).
A module not listed is a rows module (``Rows``, between ``backends`` and ``catalog``);
rows modules do not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import prefect_sklearn_dask.benchmarks as package

PACKAGE = package.__name__
HERE = Path(package.__file__).parent
# lowest first; a module may import modules of lower layers only
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"base", "cpu", "sklearn_script", "stock_server"}),
    frozenset({"work"}),
    frozenset({"workloads"}),
    frozenset({"backends"}),
    frozenset(),  # rows modules: every module not listed (core, user_flow, search_bench, ...)
    frozenset({"catalog"}),
    frozenset({"report"}),
    frozenset({"suite", "empty_flow"}),
)
ROWS_LAYER = 4


def layer_of(module: str) -> int:
    return next((i for i, names in enumerate(LAYERS) if module in names), ROWS_LAYER)


def sibling_imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):  # relative: from . import x / from .x import y
            base = node.module or ""
            names = [f"{PACKAGE}.{base}"] + [
                f"{PACKAGE}.{base}.{a.name}" if base else f"{PACKAGE}.{a.name}" for a in node.names
            ]
        else:
            continue
        for name in names:
            rest = name.removeprefix(f"{PACKAGE}.")
            if rest != name and rest.split(".")[0] in MODULES:
                found.add(rest.split(".")[0])
    return found - {path.stem}


MODULES = {p.stem for p in HERE.glob("*.py") if p.stem != "__init__"}


def violations(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} (layer {layer_of(module)}) imports {other} (layer {layer_of(other)})"
        for module, imports in sorted(graph.items())
        for other in sorted(imports)
        if layer_of(other) >= layer_of(module)
    ]


def test_every_import_goes_down_a_layer():
    graph = {name: sibling_imports(HERE / f"{name}.py") for name in MODULES}
    assert graph["report"] and graph["suite"], "the parse found no imports: the test is broken"
    assert violations(graph) == []


def test_nothing_in_the_package_imports_the_command():
    for name in MODULES:
        text = (HERE / f"{name}.py").read_text()
        assert "prefect_sklearn_dask.commands" not in text, name


def test_a_circle_is_reported():
    """The check itself: the old circle (workloads -> search_bench -> backends -> ...)."""
    graph = {"workloads": {"search_bench"}, "search_bench": {"backends"}, "backends": set()}
    assert violations(graph) == ["workloads (layer 2) imports search_bench (layer 4)"]
    assert violations({"core": {"search_bench"}, "search_bench": {"user_flow"}}) == [
        "core (layer 4) imports search_bench (layer 4)",
        "search_bench (layer 4) imports user_flow (layer 4)",
    ]


def test_compare_script_is_thin():
    """Argument parsing and the call live in the command module, as for flows/*.py."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"
    tree = ast.parse(script.read_text())
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert defs == [] and len(script.read_text().splitlines()) < 30
