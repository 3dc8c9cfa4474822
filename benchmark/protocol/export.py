"""Writing the run's result tables (``results.csv``, ``trials.csv``, ``curves.csv``, ``cost.csv``) from the storage.

The files are regenerated from the storage as a whole and written atomically, so a re-run, a
second worker or an interrupted run never leaves a half-written file or a value counted twice.
``manifest.json`` (:mod:`benchmark.manifest`: the embeddings' dimensions, folds, repeats and the
metrics' labels, units and directions) is written first, so a ``results.csv`` always has one beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmark.constants import (
    CONCATENATED,
    COST_COLUMNS,
    CURVE_COLUMNS,
    DIVERGED_METRIC,
    PRETRAINED,
    PRETRAINED_DISPLAY,
    RAW_TRUNK,
    RAW_TRUNK_DISPLAY,
    RESULT_COLUMNS,
    TRIAL_COLUMNS,
)
from benchmark.config import BenchmarkConfig
from benchmark.io import atomic_write
from benchmark.manifest import RunManifest, manifest_for, write_manifest
from benchmark.metric_catalog import VALIDATION_METRIC
from benchmark.methods import get_method
from benchmark.protocol.cross_modal import result_parts
from benchmark.protocol.faults import kill_point
from benchmark.protocol.fidelity import PRUNED_ATTR
from benchmark.protocol.units import DROPPED, RAW_DIM_ATTR, RAW_TEST_ATTR, RETRY_OF, TEST, Stages


def result_rows(stages: Stages) -> list[dict]:
    """The test evaluations as ``results.csv`` rows: Pretrained, and each method's pooled units (its repeats,
    and the best search trial as repeat ``BEST_TRIAL_REPEAT`` under ``protocol.pooling: with_best_trial``)."""
    rows = []

    def add(method, display, dataset, repeat, test):
        for name, part in result_parts(dataset, test):  # a cross-modal unit: one part per direction
            for embedding, metrics in part.items():
                for metric, value in metrics.items():
                    if metric == "num_queries":
                        continue
                    rows.append(dict(method=method, display_name=display, dataset=name, repeat=repeat,
                                     embedding=embedding, metric=metric, value=value))

    for pre in stages.pretrained:
        for unit, t in pre.completed_units().items():
            add(PRETRAINED, PRETRAINED_DISPLAY, pre.dcfg.key, unit, t.user_attrs[TEST])
            if RAW_TEST_ATTR in t.user_attrs:  # (a Pretrained unit of an older version has none)
                add(RAW_TRUNK, raw_trunk_display(t.user_attrs.get(RAW_DIM_ATTR)), pre.dcfg.key, unit,
                    t.user_attrs[RAW_TEST_ATTR])
    for (dataset, method), rep in stages.repeats.items():
        display = get_method(method).display_name
        for unit, t in sorted(rep.pooled_units().items()):
            add(method, display, dataset, unit, t.user_attrs[TEST])
            diverged = t.user_attrs.get("fold_status", []).count("diverged")
            if diverged:
                for name, _ in result_parts(dataset, t.user_attrs["test"]):
                    add(method, display, name, unit, {CONCATENATED: {DIVERGED_METRIC: float(diverged)}})
    return rows


def raw_trunk_display(dim) -> str:
    """The raw-trunk row's name in tables, with its dimension (the table's column headers give the fold
    models' dimensions, not the trunk's)."""
    return f"{RAW_TRUNK_DISPLAY} ({int(dim)}-d)" if dim is not None else RAW_TRUNK_DISPLAY


def _trial_note(t, retried_by: dict[int, int]) -> str:
    notes = []
    if RETRY_OF in t.user_attrs:
        notes.append(f"retry of trial {t.user_attrs[RETRY_OF]}")
    if t.state.name == "FAIL":
        redo = retried_by.get(t.number)
        notes.append("failed or interrupted" + (f"; redone as trial {redo}" if redo is not None else ""))
    if t.state.name == "PRUNED":
        notes.append("pruned" + (f" ({t.user_attrs[PRUNED_ATTR]})" if PRUNED_ATTR in t.user_attrs else ""))
    status = t.user_attrs.get("fold_status", [])
    if "diverged" in status:
        notes.append("diverged in fold " + ",".join(str(i) for i, s in enumerate(status) if s == "diverged"))
    return "; ".join(notes)


def trial_rows(stages: Stages) -> list[dict]:
    """Every search attempt: each slot's owner, and the failed or interrupted trials that it redid.

    Trials dropped before any work (duplicates, past the budget) and queued copies that never ran are left out.
    Only COMPLETE trials have a value: Optuna gives a pruned trial its last intermediate value, which is
    not a configuration's score (its folds so far are in ``fold_values``).
    """
    rows = []
    for (dataset, method), s in stages.search.items():
        trials = s.trials()
        slots = s.slots(trials)
        owners = {t.number for t in s.owners(trials).values()}
        retried_by = {t.user_attrs[RETRY_OF]: t.number for t in trials
                      if RETRY_OF in t.user_attrs and t.number in owners}
        for t in trials:
            attempt = t.state.name == "FAIL" and DROPPED not in t.user_attrs
            if not (attempt or (t.number in owners and t.state.name != "WAITING")):
                continue
            rows.append(dict(method=method, dataset=dataset, trial=t.number, state=t.state.name,
                             value=t.value if t.state.name == "COMPLETE" and t.value is not None else float("nan"),
                             params=json.dumps(t.params, sort_keys=True),
                             fold_values=json.dumps(t.user_attrs.get("fold_values", [])),
                             stage="search", **_cost(t), slot=slots.get(t.number),
                             fold_status=json.dumps(t.user_attrs.get("fold_status", [])),
                             note=_trial_note(t, retried_by)))
    return rows


def _cost(t) -> dict:
    """A trial's wall time (NaN while unfinished) and training iterations (NaN if not recorded)."""
    wall = float("nan")
    if t.datetime_start is not None and t.datetime_complete is not None:
        wall = (t.datetime_complete - t.datetime_start).total_seconds()
    folds = t.user_attrs.get("fold_iterations")
    return dict(wall_seconds=wall, iterations=float(sum(folds)) if folds is not None else float("nan"))


def unit_cost_rows(stages: Stages) -> list[dict]:
    """One row per completed repeat (stage "repeats") and Pretrained test unit (stage "test")."""
    rows = []
    for pre in stages.pretrained:
        for unit, t in sorted(pre.completed_units().items()):
            cost = {**_cost(t), "iterations": 0.0}  # the Pretrained row trains nothing
            rows.append(dict(stage="test", method=PRETRAINED, dataset=pre.dcfg.key, unit=unit, **cost))
    for (dataset, method), rep in stages.repeats.items():
        for unit, t in sorted(rep.completed_units().items()):
            rows.append(dict(stage="repeats", method=method, dataset=dataset, unit=unit, **_cost(t)))
    return rows


def curve_rows(stages: Stages) -> list[dict]:
    rows = []
    for (dataset, method), rep in stages.repeats.items():
        for unit, t in sorted(rep.completed_units().items()):
            for fold, curve in enumerate(t.user_attrs.get("curves", [])):
                for epoch, iteration, value in curve:
                    rows.append(dict(method=method, dataset=dataset, repeat=unit, fold=fold, epoch=epoch,
                                     iteration=iteration, metric=VALIDATION_METRIC, value=value))
    return rows


def _write_csv(path: Path, rows: list[dict], columns) -> None:
    frame = pd.DataFrame(rows, columns=list(columns))
    atomic_write(path, lambda p: frame.to_csv(p, index=False))


def run_manifest(cfg: BenchmarkConfig) -> RunManifest:
    """The manifest of ``cfg``'s results: its folds of ``model.embedding_dim`` each, its repeats, and every
    metric its evaluation settings (each dataset's Recall@K, the verification FAR) can report."""
    return manifest_for(folds=cfg.protocol.n_folds, repeats=cfg.protocol.n_repeats, pooling=cfg.protocol.pooling,
                        embedding_dim=cfg.model.embedding_dim,
                        recall_at=[cfg.recall_at_for(d) for d in cfg.datasets],
                        far=cfg.evaluation.verification_far, clustering=cfg.evaluation.clustering)


def export_results(stages: Stages, run_dir: Path, cfg: BenchmarkConfig) -> None:
    """(Re)write manifest.json, results.csv, trials.csv, curves.csv and cost.csv in ``run_dir`` from the storage.

    Values that ``dml-bench evaluate RUN`` added from saved embeddings (``evaluated.csv``) are kept in
    ``results.csv`` and described in the manifest (:func:`benchmark.protocol.reevaluate.merge_evaluated`)."""
    from benchmark.protocol.reevaluate import merge_evaluated

    rows, manifest = merge_evaluated(run_dir, result_rows(stages), run_manifest(cfg))
    write_manifest(run_dir, manifest)
    _write_csv(run_dir / "results.csv", rows, RESULT_COLUMNS)
    kill_point("export.results")
    _write_csv(run_dir / "trials.csv", trial_rows(stages), TRIAL_COLUMNS)
    _write_csv(run_dir / "curves.csv", curve_rows(stages), CURVE_COLUMNS)
    _write_csv(run_dir / "cost.csv", unit_cost_rows(stages), COST_COLUMNS)
