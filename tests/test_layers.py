"""The import contract of DESIGN.md, checked on the source: layers point down only, and no
module imports itself back through others (no import cycles, lazy imports included).

    cli -> commands -> recipe -> search -> techniques -> train, evaluate, export, report
        -> models, data -> core (errors, config, registry, select, fileio, modelio, imports)

Modules of one layer may import each other (pruning recovers through distillation). Imports
under ``if TYPE_CHECKING:`` are annotations, not dependencies, and are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "slimkit"
LAYERS: list[set[str]] = [
    {"errors", "config", "registry", "select", "fileio", "modelio", "imports"},
    {"models", "data"},
    {"train", "evaluate", "export", "report"},
    {"distillation", "pruning", "quantization", "factorization", "sharing", "transform", "dynamic"},
    {"search"},
    {"recipe"},
    {"commands"},
    {"cli"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = SRC / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def runtime_imports(tree: ast.AST) -> Iterator[str]:
    """Every slimkit module imported when the code runs (top level or inside functions)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # annotations only
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("slimkit"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("slimkit"):
            subs = [f"{node.module}.{a.name}" for a in node.names]
            yield from subs if all(is_module(s) for s in subs) else [node.module]


def layer(name: str) -> int | None:
    parts = name.split(".")
    return next((i for i, members in enumerate(LAYERS) if len(parts) > 1 and parts[1] in members), None)


def graph() -> dict[str, set[str]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        out[module_name(path)] = set(runtime_imports(ast.parse(path.read_text(encoding="utf-8"))))
    modules = set(out)

    def owner(name: str) -> str | None:
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in modules else None

    return {m: {o for n in deps if (o := owner(n)) and o != m} for m, deps in out.items()}


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set().union(*LAYERS)


@pytest.mark.parametrize("module", sorted(graph()))
def test_imports_point_down_only(module):
    mine = layer(module)
    if mine is None:  # the top-level package: its lazy re-exports
        return
    upward = sorted(n for n in graph()[module] if (theirs := layer(n)) is not None and theirs > mine)
    assert not upward, f"{module} (layer {mine}) imports {upward} from a higher layer"


def test_no_import_cycles():
    edges = graph()
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in edges[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in order:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"
