"""``dml-bench export RUN --mlflow URI``: a run folder's results as MLflow runs, through MLflow's own client.

One MLflow run per method × dataset (Pretrained included) in one experiment (default: the run folder's name):

* parameters: method, display name, dataset, folds, repeats, embedding dimension, and the searched
  hyperparameters of the configuration that was retrained (``hp.<name>``: the best COMPLETE search trial of
  ``trials.csv``, ties to the earliest slot, as the repeat stage chose it);
* metrics: every value of ``results.csv`` as ``<embedding>/<metric>`` at step = repeat (a per-category metric
  ``map_at_r@bicycle`` as ``<embedding>/map_at_r.bicycle``: MLflow refuses ``@``); the aggregate over
  repeats as ``mean/<embedding>/<metric>`` and ``ci95/<embedding>/<metric>`` (half-width of the 95% interval;
  ``separated`` is the mean of the fold models, as the tables print); the validation curves of ``curves.csv``
  as ``val_map_at_r/repeat<r>/fold<f>`` at step = training iteration;
* artifacts: this method's and dataset's rows of ``results.csv``, ``trials.csv`` and ``curves.csv``, the
  dataset's tables (``tables/<dataset>*``, written by ``dml-bench report``), ``config.resolved.yaml``,
  ``manifest.json`` and ``provenance.json``.

Runs carry the tag ``dml_bench.run_dir`` (the run folder's absolute path); exporting the same folder again
replaces the runs it wrote before (deleted, then written anew), so an export after more repeats is not doubled.
The run folder is checked as ``dml-bench report`` checks it before anything is sent; a missing ``mlflow``
package, an unknown URI scheme or a store that cannot be opened is one line (exit 2).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.manifest import read_manifest
from benchmark.metric_catalog import split_category
from benchmark.reporting.aggregate import aggregate, read_curves, read_results, read_trials
from benchmark.reporting.run_files import check_run_files

#: URI schemes accepted: a local folder store, a local SQLite database, a tracking server.
SCHEMES = ("file:", "sqlite:", "http://", "https://")
INSTALL = "pip install 'dml-bench[mlflow]' (or pip install mlflow-skinny)"
RUN_DIR_TAG = "dml_bench.run_dir"
#: Files of the run folder every MLflow run gets as artifacts, where present.
RUN_FILES = ("config.resolved.yaml", "manifest.json", "provenance.json")


def metric_key(*parts: str) -> str:
    """An MLflow metric name from ``parts`` joined by ``/``: a per-category metric ``map_at_r@bicycle`` becomes
    ``map_at_r.bicycle`` (MLflow refuses ``@``; and its folder store keeps ``a/b`` as a file, so ``a/b/c`` cannot
    sit beside it), and a character MLflow refuses in a name (it takes letters, digits, ``_ - . / :`` and spaces)
    becomes ``_``."""
    out = []
    for part in parts:
        metric, category = split_category(part)
        out.append(metric if category is None else f"{metric}.{category}")
    return re.sub(r"[^/\w.\- :]", "_", "/".join(out))


def _mlflow_client(uri: str):
    """MLflow's client for ``uri``; one line naming the pip command when mlflow is not installed."""
    if not uri.strip() or not uri.startswith(SCHEMES):
        raise BenchmarkError(f"--mlflow {uri!r}: expected a tracking URI starting with {', '.join(SCHEMES)} (e.g. "
                             f"sqlite:///mlflow.db, file:./mlruns or http://host:5000)")
    if uri.startswith("file:"):
        # MLflow 3 refuses its folder store unless asked for it; the user asked for it by naming a file: URI
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise BenchmarkError(f"export --mlflow needs the mlflow package, which is not installed: {INSTALL}") from None
    try:
        return MlflowClient(tracking_uri=uri)
    except Exception as exc:  # noqa: BLE001 - MlflowException and whatever its stores raise for a bad URI
        raise BenchmarkError(f"--mlflow {uri}: the tracking store cannot be opened ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}"


def _artifact_location(uri: str) -> Optional[str]:
    """Where a new experiment of a SQLite store keeps its artifacts: beside the database (MLflow's default is
    ``./mlruns`` in the current folder, wherever the command runs)."""
    if not uri.startswith("sqlite:"):
        return None
    db = uri[len("sqlite:"):].lstrip("/")
    path = Path("/" + db) if uri.startswith("sqlite:////") else Path(db)
    return (path.resolve().parent / "mlartifacts").as_uri()


def _best_params(trials: Optional[pd.DataFrame], method: str, dataset: str) -> dict[str, Any]:
    """The params of the best COMPLETE search trial of ``method`` on ``dataset`` (ties: the earliest slot)."""
    if trials is None:
        return {}
    rows = trials[(trials["method"] == method) & (trials["dataset"] == dataset) & (trials["state"] == "COMPLETE")]
    rows = rows[rows["value"].notna()]
    if rows.empty:
        return {}
    order = "slot" if "slot" in rows.columns and rows["slot"].notna().all() else "trial"
    best = rows.assign(_neg=-rows["value"]).sort_values(["_neg", order, "trial"], kind="stable").iloc[0]
    try:
        return dict(json.loads(best["params"]))
    except (TypeError, ValueError):
        return {}


def _metric(key: str, value: float, step: int, timestamp: int):
    from mlflow.entities import Metric

    return Metric(key=key, value=float(value), timestamp=timestamp, step=int(step))


def _log_batches(client, run_id: str, metrics: list, params: list) -> None:
    """MLflow's ``log_batch`` in pieces within its limits (1000 metrics, 100 params a call)."""
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i:i + 100])
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])


def export_mlflow(run_dir: str | os.PathLike, uri: str, *, experiment: Optional[str] = None) -> list[str]:
    """Write the run folder ``run_dir`` to the MLflow store ``uri`` (see the module docstring); the lines to print."""
    import time

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BenchmarkError(f"{run_dir}: run folder not found (expected a folder written by dml-bench run)")
    check_run_files(run_dir)  # everything read below is usable: nothing is sent for a damaged folder
    results = read_results(run_dir / "results.csv")
    manifest = read_manifest(run_dir)
    agg = aggregate(results, manifest)
    trials = read_trials(run_dir / "trials.csv") if (run_dir / "trials.csv").exists() else None
    curves = read_curves(run_dir / "curves.csv") if (run_dir / "curves.csv").exists() else None
    client = _mlflow_client(uri)
    from mlflow.entities import Param, ViewType

    name = experiment or run_dir.resolve().name
    try:
        found = client.get_experiment_by_name(name)
        experiment_id = (found.experiment_id if found is not None
                         else client.create_experiment(name, artifact_location=_artifact_location(uri)))
        if found is not None and found.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
        key = str(run_dir.resolve())
        old = client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=50000)
        replaced = [r for r in old if r.data.tags.get(RUN_DIR_TAG) == key]
        for r in replaced:
            client.delete_run(r.info.run_id)
        lines = []
        now = int(time.time() * 1000)
        for (method, dataset), rows in results.groupby(["method", "dataset"], sort=False):
            display = str(rows["display_name"].iloc[0])
            params = {"method": method, "display_name": display, "dataset": dataset, "folds": manifest.folds,
                      "repeats": int(rows["repeat"].nunique()), "embedding_dim": manifest.fold_dim()}
            params.update({f"hp.{k}": v for k, v in sorted(_best_params(trials, method, dataset).items())})
            metrics = [_metric(metric_key(r.embedding, r.metric), r.value, r.repeat, now)
                       for r in rows.itertuples() if not math.isnan(r.value)]
            mine = agg[(agg["method"] == method) & (agg["dataset"] == dataset)]
            for r in mine.itertuples():
                if not math.isnan(r.mean):
                    metrics.append(_metric(metric_key("mean", r.embedding, r.metric), r.mean, 0, now))
                if not math.isnan(r.half_width):
                    metrics.append(_metric(metric_key("ci95", r.embedding, r.metric), r.half_width, 0, now))
            my_curves = None
            if curves is not None:
                my_curves = curves[(curves["method"] == method) & (curves["dataset"] == dataset)]
                metrics += [_metric(metric_key(c.metric, f"repeat{int(c.repeat)}", f"fold{int(c.fold)}"), c.value,
                                    c.iteration, now)
                            for c in my_curves.itertuples() if not math.isnan(c.value)]
            tags = {RUN_DIR_TAG: key, "dml_bench.method": method, "dml_bench.dataset": dataset}
            run = client.create_run(experiment_id, run_name=f"{display} / {dataset}", tags=tags)
            run_id = run.info.run_id
            _log_batches(client, run_id, metrics, [Param(k, str(v)) for k, v in params.items()])
            _log_artifacts(client, run_id, run_dir, dataset, rows,
                           None if trials is None else trials[(trials["method"] == method)
                                                              & (trials["dataset"] == dataset)], my_curves)
            client.set_terminated(run_id)
            lines.append(f"{display} / {dataset}: MLflow run {run_id} ({len(params)} parameters, {len(metrics)} "
                         f"metric values)")
    except BenchmarkError:
        raise
    except Exception as exc:  # noqa: BLE001 - the store's own errors (unreachable server, locked database...)
        raise BenchmarkError(f"--mlflow {uri}: the export failed ({_first_line(exc)})") from None
    again = f"; {len(replaced)} runs of an earlier export of this folder replaced" if replaced else ""
    lines.append(f"exported {len(lines)} runs to experiment {name!r} at {uri}{again}")
    return lines


def _log_artifacts(client, run_id: str, run_dir: Path, dataset: str, results: pd.DataFrame,
                   trials: Optional[pd.DataFrame], curves: Optional[pd.DataFrame]) -> None:
    """This run's rows of the run folder's CSV files, the dataset's tables and the run's config files."""
    with tempfile.TemporaryDirectory(prefix="dml-bench-mlflow-") as tmp:
        tmp = Path(tmp)
        for filename, frame in (("results.csv", results), ("trials.csv", trials), ("curves.csv", curves)):
            if frame is not None:
                frame.to_csv(tmp / filename, index=False)
                client.log_artifact(run_id, str(tmp / filename))
    for filename in RUN_FILES:
        if (run_dir / filename).is_file():
            client.log_artifact(run_id, str(run_dir / filename), artifact_path="run")
    tables = run_dir / "tables"
    if tables.is_dir():
        for path in sorted(tables.iterdir()):
            if path.is_file() and (path.stem == dataset or path.stem.startswith(f"{dataset}_")):
                client.log_artifact(run_id, str(path), artifact_path="tables")
