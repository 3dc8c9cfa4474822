"""No import circle inside ``benchmark/``: module A importing B which (directly or not) imports A.

Every ``import`` counts, at module level or inside a function (``imports`` from ``test_layers``), so that a
late import cannot hide a circle; ``from benchmark.methods import library`` counts as importing the submodule
``benchmark.methods.library``. A package's ``__init__`` running before its submodules is Python's order of import,
not an edge. A failure names the circle's modules in order.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Optional

from tests.test_layers import PACKAGE, imports


def module_name(path: Path, package: Path = PACKAGE) -> str:
    return ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")


def submodules_imported(path: Path, modules) -> list[str]:
    """``from benchmark.pkg import sub`` where ``benchmark.pkg.sub`` is a module: ``benchmark.pkg.sub``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.extend(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports (``from benchmark.x import y`` counts as ``benchmark.x``)."""
    paths = {module_name(p, package): p for p in sorted(package.rglob("*.py"))}
    graph = {}
    for module, path in paths.items():
        targets = set()
        for target in imports(path) + submodules_imported(path, paths):
            # ``from benchmark.methods import Float`` imports the package ``benchmark.methods`` (its __init__),
            # unless the name is a submodule (then ``submodules_imported`` gave the submodule too)
            if target in paths and any(t.startswith(target + ".") for t in submodules_imported(path, paths)):
                continue
            while target not in paths and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in paths and target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> Optional[list[str]]:
    """One import circle as ``[a, b, ..., a]``, or None (depth-first search, colours white/grey/black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> Optional[list[str]]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_find_cycle_reports_the_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_graph_sees_a_late_import_circle(tmp_path):
    pkg = tmp_path / "benchmark"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("")
    (pkg / "models" / "trunks.py").write_text("def f():\n    from benchmark.models.bn import B\n")
    (pkg / "models" / "bn.py").write_text("from benchmark.models.trunks import f\n")
    graph = import_graph(pkg)
    assert find_cycle(graph) == ["benchmark.models.bn", "benchmark.models.trunks", "benchmark.models.bn"]
