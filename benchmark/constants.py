"""Constants shared across layers: metric names, result-file schemas, default budgets and paths."""

from __future__ import annotations

import os
from pathlib import Path

#: Retrieval metrics reported by ``compute_metrics`` (plus ``recall_at_{k}`` for each requested k).
METRICS = ("precision_at_1", "r_precision", "map_at_r")
#: Their labels, units and directions: ``benchmark.metric_catalog``.

#: Columns of ``results.csv`` (long format, one row per value). ``embedding`` is ``fold{i}`` for
#: the i-th fold's model on its own (the "separated" figure is their mean per repeat) or
#: ``concatenated`` for the folds' normalised embeddings joined.
RESULT_COLUMNS = ("method", "display_name", "dataset", "repeat", "embedding", "metric", "value")
#: Columns of ``trials.csv``: one row per search trial (params and per-fold values as JSON), with
#: its cost: ``stage`` ("search"), ``wall_seconds`` (start to completion) and ``iterations``
#: (training iterations summed over the folds; empty where not recorded); ``slot`` is the
#: search-budget slot the trial filled; ``fold_status`` says which folds diverged (or were stopped mid-way
#: by the pruner: ``pruned``); ``note`` says why a FAIL trial failed (interrupted, or its worker died) and
#: which later trial redid it, or why a PRUNED trial was pruned. Only COMPLETE trials have a ``value``.
TRIAL_COLUMNS = ("method", "dataset", "trial", "state", "value", "params", "fold_values",
                 "stage", "wall_seconds", "iterations", "slot", "fold_status", "note")
#: The cost columns of ``trials.csv``; run folders written before they existed lack them.
TRIAL_COST_COLUMNS = ("stage", "wall_seconds", "iterations")
#: Columns added to ``trials.csv`` after its first version (older run folders lack them).
TRIAL_LATER_COLUMNS = TRIAL_COLUMNS[7:]
#: Columns of ``cost.csv``: one row per completed repeat (stage "repeats") and Pretrained test
#: evaluation (stage "test"), with its wall time and training iterations (empty where not recorded).
COST_COLUMNS = ("stage", "method", "dataset", "unit", "wall_seconds", "iterations")
#: Columns of ``curves.csv``: validation MAP@R along training, for every repeat's folds.
CURVE_COLUMNS = ("method", "dataset", "repeat", "fold", "epoch", "iteration", "metric", "value")

#: A row of ``results.csv`` (embedding ``concatenated``) for a repeat in which training diverged (a
#: non-finite loss) in some folds: its value is the number of such folds. Tables mark the method.
DIVERGED_METRIC = "diverged_folds"

#: The "Pretrained" row's method name in results (the trunk before training, untrained embedder).
PRETRAINED = "pretrained"
PRETRAINED_DISPLAY = "Pretrained"
#: The "Raw trunk" row's method name: the trunk's pooled output as it is, no embedder (a features dataset's
#: features as given), one evaluation scored as a whole (``concatenated``), next to Pretrained.
RAW_TRUNK = "raw_trunk"
RAW_TRUNK_DISPLAY = "Raw trunk"
#: Rows that are baselines of no training, never ranked or tested against the methods.
BASELINES = (PRETRAINED, RAW_TRUNK)
CONCATENATED = "concatenated"

#: ``protocol.pooling``: which test evaluations a method's row pools. ``repeats``: the ``n_repeats``
#: retrainings of the best configuration; ``with_best_trial``: those and the best search trial's own fold
#: models (n = n_repeats + 1), as the reality check's published report pooled them. The manifest names the rule.
POOLINGS = ("repeats", "with_best_trial")
#: The ``repeat`` value of the best search trial's rows in ``results.csv`` (``with_best_trial`` only); the
#: retrainings are repeats 0..n_repeats-1.
BEST_TRIAL_REPEAT = -1


def fold_embedding(i: int) -> str:
    """The ``embedding`` value of fold ``i``'s model in ``results.csv``."""
    return f"fold{i}"


def cache_dir() -> Path:
    """Where generated data and pretrained small trunks are cached (``$DML_BENCH_CACHE`` overrides)."""
    env = os.environ.get("DML_BENCH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dml-bench"


#: How wide a LaTeX table may be (``dml-bench report --latex-width``, rendered by
#: ``benchmark.reporting.tables``): ``column`` (a ``table`` float shrunk to the column width when
#: wider: fits a column of a two-column venue and the text of a one-column one), ``page`` (a
#: ``table*`` float, spanning both columns of a two-column venue, shrunk to the text width when
#: wider) or ``none`` (a ``table`` float at its natural width).
LATEX_WIDTHS: tuple[str, ...] = ("column", "page", "none")
