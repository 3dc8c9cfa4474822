"""The package's layers depend in one direction: no module imports a layer above its own.

Order, bottom to top: the base modules (errors, secrets, constants, io, checks, config, manifest, metric_catalog,
provenance), data, models, evaluation, methods, training, protocol, reporting, cli.
Every ``import`` is counted, at module level or
inside a function, so that a late import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "benchmark"
LAYERS = ["base", "data", "models", "evaluation", "methods", "training", "protocol", "reporting", "cli"]
BASE = {"errors", "secrets", "constants", "io", "checks", "config", "manifest", "metric_catalog", "provenance",
        "__init__"}


def layer_of(module: str) -> str:
    """``benchmark.protocol.units`` -> ``protocol``; a top-level module is ``base`` or ``cli``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    if parts[1] in BASE:
        return "base"
    return parts[1]


def imports(path: Path) -> list[str]:
    """Every ``benchmark...`` module that ``path`` imports, anywhere in it."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "benchmark":
                out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names if a.name.split(".")[0] == "benchmark")
    return out


def upward_imports() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        own = layer_of(module)
        for target in imports(path):
            other = layer_of(target)
            if LAYERS.index(other) > LAYERS.index(own):
                found.append(f"{module} ({own}) imports {target} ({other})")
    return found


def test_every_module_is_in_a_layer():
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        assert layer_of(module) in LAYERS, f"{module}: add its layer to LAYERS (or its name to BASE)"


def test_no_module_imports_a_layer_above_it():
    assert upward_imports() == []


def test_config_is_a_leaf():
    config = [t for t in imports(PACKAGE / "config.py")]
    assert config == ["benchmark.errors", "benchmark.secrets"]
    assert imports(PACKAGE / "secrets.py") == [] and imports(PACKAGE / "errors.py") == []


@pytest.mark.parametrize("source, expected", [
    ("from benchmark.protocol.units import SAMPLERS\n", ["benchmark.protocol.units"]),
    ("def f():\n    import benchmark.reporting.tables\n", ["benchmark.reporting.tables"]),
    ("from . import x\nimport numpy\n", []),
])
def test_imports_sees_late_and_module_level_imports(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert imports(path) == expected
