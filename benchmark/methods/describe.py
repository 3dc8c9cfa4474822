"""What ``dml-bench list-methods`` prints: a text table of the registered methods, a name filter, and JSON."""

from __future__ import annotations

import fnmatch
import inspect
from typing import Any, Optional

from tabulate import tabulate

from benchmark.errors import RegistryError
from benchmark.methods.registry import MethodSpec, list_methods
from benchmark.methods.search_space import Categorical, Float, Int, Param

HEADERS = ("name", "display", "description", "search space", "defaults", "flags", "source")


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _flags(spec: MethodSpec) -> str:
    flags = [f"m={spec.m_per_class}"]
    if spec.needs_num_classes:
        flags.append("classes")
    if spec.has_parameters:
        flags.append("params")
    if spec.warmup_epochs:
        flags.append(f"warmup_epochs={spec.warmup_epochs}")
    if spec.needs_spatial_map:
        flags.append("spatial map")
    if not spec.can_run_frozen:
        flags.append("no frozen regime")
    return "\n".join(flags)


def summary(spec: MethodSpec) -> str:
    """The method's one-line description: the first paragraph of its build function's docstring."""
    return " ".join(spec.description.split("\n\n", 1)[0].split())


def method_row(spec: MethodSpec) -> list[str]:
    """One row of the table; a default of a parameter that is not searched is marked ``(fixed)``, and a
    dataset's own ranges and fixed values follow the search space (``on sop: ...``)."""
    space = "\n".join(f"{name} {param.describe()}" for name, param in spec.search_space.items())
    for dataset, overrides in spec.dataset_search_spaces.items():  # per-dataset ranges and fixed values
        searched = spec.search_space_for(dataset)
        space += "".join(f"\non {dataset}: {name}" + (f" {value.describe()}" if name in searched
                                                      else f"={_format_value(value)} (fixed)")
                         for name, value in overrides.items())
    defaults = "\n".join(f"{name}={_format_value(value)}" + ("" if name in spec.search_space else " (fixed)")
                         for name, value in spec.defaults.items())
    return [spec.name, spec.display_name, summary(spec), space or "-", defaults or "-", _flags(spec), spec.source]


def select_methods(pattern: Optional[str] = None) -> list[MethodSpec]:
    """The registered methods whose name or display name matches ``pattern`` (case-insensitive): a glob when
    it holds ``*``, ``?`` or ``[``, else a substring; every method when None. None matching: RegistryError."""
    specs = list_methods()
    if pattern is None:
        return specs
    wanted = pattern.lower()
    glob = any(c in wanted for c in "*?[")

    def matches(text: str) -> bool:
        text = text.lower()
        return fnmatch.fnmatchcase(text, wanted) if glob else wanted in text

    hits = [s for s in specs if matches(s.name) or matches(s.display_name)]
    if not hits:
        raise RegistryError(f"no method matches {pattern!r} (a substring or a glob such as 'proxy*'; known: "
                            f"{', '.join(s.name for s in specs)})")
    return hits


def describe_methods(specs: Optional[list[MethodSpec]] = None) -> str:
    """The methods (default: every registered one) with description, search space, defaults, flags and source.

    Flags: ``m`` images per class in a batch; ``classes``: the loss needs the number of classes;
    ``params``: the loss has learnable parameters (own learning rate ``loss_lr``); ``warmup_epochs``;
    ``spatial map``: works on the trunk's map; ``no frozen regime``: cannot train on cached trunk outputs.
    """
    rows = [method_row(spec) for spec in (list_methods() if specs is None else specs)]
    return tabulate(rows, headers=HEADERS, tablefmt="grid", maxcolwidths=[None, None, 40, None, None, None, 24],
                    disable_numparse=True)


def _param_dict(param: Param) -> dict[str, Any]:
    if isinstance(param, Categorical):
        return {"type": "categorical", "choices": list(param.choices)}
    kind = "float" if isinstance(param, Float) else "int" if isinstance(param, Int) else type(param).__name__
    return {"type": kind, "low": param.low, "high": param.high, "log": param.log}


def method_record(spec: MethodSpec) -> dict[str, Any]:
    """Everything ``list-methods --json`` says about one method (plain JSON types)."""
    return {
        "name": spec.name, "display_name": spec.display_name, "source": spec.source,
        "summary": summary(spec), "description": inspect.cleandoc(spec.description),
        "search_space": {name: _param_dict(p) for name, p in spec.search_space.items()},
        "defaults": dict(spec.defaults),
        "fixed": [name for name in spec.defaults if name not in spec.search_space],
        "m_per_class": spec.m_per_class, "needs_num_classes": spec.needs_num_classes,
        "has_parameters": spec.has_parameters, "warmup_epochs": spec.warmup_epochs,
        "needs_spatial_map": spec.needs_spatial_map, "can_run_frozen": spec.can_run_frozen,
    }
