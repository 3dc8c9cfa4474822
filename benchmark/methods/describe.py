"""A plain-text table of every registered method: what ``run_benchmark.py list-methods`` prints."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from benchmark.methods.registry import MethodSpec, list_methods

HEADERS = ("name", "display", "search space", "defaults", "flags", "source")


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
    return [spec.name, spec.display_name, space or "-", defaults or "-", _flags(spec), spec.source]


def describe_methods() -> str:
    """Every registered method with its search space, defaults, flags and source, as a text table.

    Flags: ``m`` images per class in a batch; ``classes``: the loss needs the number of classes;
    ``params``: the loss has learnable parameters (own learning rate ``loss_lr``); ``warmup_epochs``;
    ``spatial map``: works on the trunk's map; ``no frozen regime``: cannot train on cached trunk outputs.
    """
    rows = [method_row(spec) for spec in list_methods()]
    return tabulate(rows, headers=HEADERS, tablefmt="grid", maxcolwidths=[None, None, None, None, None, 24],
                    disable_numparse=True)
