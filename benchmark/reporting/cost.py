"""What each row of the tables cost: wall time, training iterations and images processed, per
method and stage, read from the run folder's CSV files.

* search: ``trials.csv`` (one row per search trial; its ``wall_seconds`` and ``iterations``);
* repeats and test: ``cost.csv`` (one row per repeat of the best configuration, stage
  "repeats": its training on every fold and its test evaluation, which run as one unit; and one
  per Pretrained test evaluation, stage "test").

Images processed = training iterations × the dataset's batch size (``training.batch_size`` of
``config.resolved.yaml``, overlaid with the dataset entry's own ``training``). Run folders written
before the cost was recorded lack the columns or the file: their cells are NaN, shown
"not recorded".
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import yaml

from benchmark.config import load_yaml
from benchmark.reporting.aggregate import read_cost, read_trials

#: Columns of :func:`cost_table`'s frame.
COST_TABLE_COLUMNS = ("dataset", "method", "stage", "units", "wall_seconds", "iterations",
                      "images")
#: Order of the stages in the table.
STAGES = ("search", "repeats", "test", "total")


def batch_sizes(config_path: str | os.PathLike) -> dict[str, int]:
    """Dataset key → training batch size, from a run's ``config.resolved.yaml`` ({} if absent)."""
    path = Path(config_path)
    if not path.is_file():
        return {}
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    default = (data.get("training") or {}).get("batch_size")
    out: dict[str, int] = {}
    for entry in data.get("datasets") or []:
        if isinstance(entry, str):
            entry = {"name": entry}
        key = entry.get("label") or entry.get("name")
        size = (entry.get("training") or {}).get("batch_size", default)
        if key is not None and size is not None:
            out[str(key)] = int(size)
    return out


def _total(series: pd.Series) -> float:
    """The sum, NaN when any value is missing (a partial total would understate the cost)."""
    values = pd.to_numeric(series, errors="coerce")
    return math.nan if values.isna().any() or values.empty else float(values.sum())


def cost_table(trials: pd.DataFrame | None, units: pd.DataFrame | None,
               sizes: dict[str, int] | None = None) -> pd.DataFrame:
    """Per (dataset, method) and stage: units of work, summed wall seconds, iterations, images.

    ``trials`` is ``trials.csv`` (its cost columns may be absent or empty), ``units`` is
    ``cost.csv`` (or None). A "total" row per method sums the stages (NaN when a stage is not
    recorded).
    """
    parts = []
    if trials is not None and not trials.empty:
        t = trials.copy()
        for col in ("wall_seconds", "iterations"):
            t[col] = pd.to_numeric(t[col], errors="coerce") if col in t else math.nan
        t["stage"] = "search"
        parts.append(t[["dataset", "method", "stage", "wall_seconds", "iterations"]])
    if units is not None and not units.empty:
        parts.append(units[["dataset", "method", "stage", "wall_seconds", "iterations"]])
    if not parts:
        return pd.DataFrame(columns=list(COST_TABLE_COLUMNS))
    long = pd.concat(parts, ignore_index=True)
    long["dataset"] = long["dataset"].astype(str)
    rows = []
    for (dataset, method), grp in long.groupby(["dataset", "method"], sort=False):
        per_stage = []
        for stage in STAGES[:-1]:
            sgrp = grp[grp["stage"] == stage]
            if sgrp.empty:
                continue
            per_stage.append({"dataset": dataset, "method": method, "stage": stage,
                              "units": int(len(sgrp)), "wall_seconds": _total(sgrp["wall_seconds"]),
                              "iterations": _total(sgrp["iterations"])})
        if len(per_stage) > 1:
            stages = pd.DataFrame(per_stage)
            per_stage.append({"dataset": dataset, "method": method, "stage": "total",
                              "units": int(stages["units"].sum()),
                              "wall_seconds": _total(stages["wall_seconds"]),
                              "iterations": _total(stages["iterations"])})
        rows += per_stage
    out = pd.DataFrame(rows, columns=list(COST_TABLE_COLUMNS))
    size = out["dataset"].map(sizes or {}).astype(float)
    out["images"] = out["iterations"] * size
    return out


def run_cost_table(run_dir: str | os.PathLike) -> pd.DataFrame:
    """:func:`cost_table` of a run folder (whatever of ``trials.csv`` and ``cost.csv`` it has)."""
    run_dir = Path(run_dir)
    trials = read_trials(run_dir / "trials.csv") if (run_dir / "trials.csv").exists() else None
    return cost_table(trials, read_cost(run_dir / "cost.csv"),
                      batch_sizes(run_dir / "config.resolved.yaml"))
