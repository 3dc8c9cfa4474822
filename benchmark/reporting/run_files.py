"""Every file ``dml-bench report`` reads, checked before it writes anything.

``check_run_files(run_dir)`` reads ``results.csv`` with ``manifest.json`` (and aggregates them, which
checks that the manifest describes every row), and, where present, ``trials.csv``, ``curves.csv``,
``cost.csv`` (headers, and numbers in the numeric columns) and ``config.resolved.yaml``. The first
problem raises one ``BenchmarkError`` line naming the file (and the row or key); a report that would
fail half-way (tables rewritten, then a traceback over a corrupt ``trials.csv``) fails here instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import yaml

from benchmark.config import load_yaml, yaml_problem
from benchmark.errors import BenchmarkError
from benchmark.manifest import read_manifest
from benchmark.reporting.aggregate import _numeric, aggregate, read_cost, read_curves, read_results, read_trials

#: The numeric columns of each optional file: a value there that is not a number names its row.
NUMERIC_COLUMNS = {"trials.csv": (read_trials, ("trial", "value", "wall_seconds", "iterations")),
                   "curves.csv": (read_curves, ("repeat", "fold", "epoch", "iteration", "value")),
                   "cost.csv": (read_cost, ("unit", "wall_seconds", "iterations"))}


def check_run_files(run_dir: str | os.PathLike) -> None:
    """Raise ``BenchmarkError`` (one line naming the file) if any file the report reads is unusable."""
    run_dir = Path(run_dir)
    results = run_dir / "results.csv"
    if not results.is_file():
        raise BenchmarkError(f"{results} does not exist (is {run_dir} a run folder?)")
    rows = read_results(results)
    if rows.empty:
        raise BenchmarkError(f"{results} holds no results yet (only its header): no unit of work has finished; run "
                             f"the same 'dml-bench run' command to continue the run, then report")
    aggregate(rows, read_manifest(run_dir))
    for name, (reader, columns) in NUMERIC_COLUMNS.items():
        path = run_dir / name
        if not path.exists():
            continue
        reader(path)  # the header, and the file as a whole (a malformed row names its line)
        raw = pd.read_csv(path, dtype=str)  # the cells as written: the readers would turn a word into NaN
        for col in columns:
            if col in raw.columns:
                _numeric(raw, col, path)
    config = run_dir / "config.resolved.yaml"
    if config.exists():
        try:
            data = load_yaml(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise BenchmarkError(f"{config}: cannot be read as the run's config ({yaml_problem(exc)}); "
                                 f"restore it (the report takes the batch sizes from it)") from None
        if data is not None and not isinstance(data, dict):
            raise BenchmarkError(f"{config}: expected a mapping of config keys (the run's config), "
                                 f"got {type(data).__name__}")

