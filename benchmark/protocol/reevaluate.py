"""``dml-bench evaluate RUN``: a finished run's metrics recomputed from its saved embeddings, without training.

A run started with ``--save embeddings`` (or ``both``) keeps each repeat's test embeddings
(:mod:`benchmark.protocol.artifacts`). :func:`reevaluate_run` scores them again with the code the run scored
them with (``benchmark.evaluation.embed.score_embeddings``, the run's seed, Recall@K, verification FAR and
its thresholds), for the metrics asked for: any metric of the catalog (``describe_metric``), a Recall@K of a
new K or the clustering metrics included. Values ``results.csv`` already has are compared, not replaced (the
largest difference is reported: saved embeddings re-score to the run's values); new ones are added to
``results.csv`` and kept in ``evaluated.csv``, and the manifest describes their metrics, so that the tables
show them. A later ``dml-bench run`` of the same folder, which rewrites ``results.csv`` from its storage,
keeps them (:func:`merge_evaluated`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from benchmark.config import BenchmarkConfig, load_yaml, parse_config
from benchmark.constants import DIVERGED_METRIC, RESULT_COLUMNS
from benchmark.errors import BenchmarkError
from benchmark.evaluation.clustering import CLUSTERING_METRICS
from benchmark.evaluation.embed import score_embeddings
from benchmark.io import atomic_write
from benchmark.manifest import RunManifest, read_manifest, write_manifest
from benchmark.metric_catalog import PROTOCOL, describe_metric, is_threshold_metric, recall_k, tar_key
from benchmark.protocol.artifacts import ARTIFACTS_DIR, EMBEDDINGS_FILE, read_embeddings
from benchmark.training.threads import torch_threads

#: Values added by ``dml-bench evaluate RUN`` (columns ``RESULT_COLUMNS``), kept across re-exports.
EVALUATED_FILE = "evaluated.csv"
_KEY = ["method", "dataset", "repeat", "embedding", "metric"]
#: The largest difference between a re-scored value and the run's that counts as the same.
TOLERANCE = 1e-6


def _read_rows(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"cannot read {path}: {(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
    if sorted(frame.columns) != sorted(RESULT_COLUMNS):
        raise BenchmarkError(f"{path} has the wrong header (expected columns: {', '.join(RESULT_COLUMNS)})")
    frame = frame[list(RESULT_COLUMNS)].copy()
    for col in ("method", "display_name", "dataset", "embedding", "metric"):
        frame[col] = frame[col].astype(str)
    frame["repeat"] = pd.to_numeric(frame["repeat"], errors="coerce")
    if frame["repeat"].isna().any():
        raise BenchmarkError(f"{path}: column 'repeat' must hold integers")
    frame["repeat"] = frame["repeat"].astype("int64")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    return frame


def _describe_new(manifest: RunManifest, metrics) -> RunManifest:
    """``manifest`` with the metrics it does not describe yet added from the catalog."""
    extra = {}
    for metric in metrics:
        if metric not in manifest.metrics:
            info = describe_metric(str(metric))
            if info is None:
                raise BenchmarkError(f"{EVALUATED_FILE}: unknown metric {metric!r}")
            extra[metric] = info
    if not extra:
        return manifest
    return RunManifest(folds=manifest.folds, repeats=manifest.repeats, dims=manifest.dims,
                       metrics={**manifest.metrics, **extra}, source=manifest.source)


def merge_evaluated(run_dir: Path, rows: list[dict], manifest: RunManifest) -> tuple[list[dict], RunManifest]:
    """``rows`` (from the storage) with the values of ``run_dir/evaluated.csv`` they lack, and ``manifest``
    describing their metrics; both unchanged when there is no such file."""
    path = Path(run_dir) / EVALUATED_FILE
    if not path.is_file():
        return rows, manifest
    extra = _read_rows(path)
    have = {tuple(r[k] for k in _KEY) for r in rows}
    added = [r for r in extra.to_dict("records") if tuple(r[k] for k in _KEY) not in have]
    return rows + added, _describe_new(manifest, {r["metric"] for r in added})


def read_run_config(run_dir: Path) -> BenchmarkConfig:
    """The config a run folder was run with (``config.resolved.yaml``)."""
    from benchmark.protocol.run_dir import CONFIG_FILE

    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise BenchmarkError(f"{path} does not exist (is {run_dir} a run folder written by dml-bench run?)")
    try:
        return parse_config(load_yaml(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"cannot read {path}: {exc}") from None


def check_metric_names(names: Sequence[str], far: Optional[float]) -> list[str]:
    """The metric names ``--metrics`` gives, each one a metric a test evaluation reports under this run's
    verification FAR; one ``BenchmarkError`` line naming the first that is not."""
    out = []
    for name in names:
        if describe_metric(name) is None or name in PROTOCOL:
            raise BenchmarkError(f"--metrics: unknown metric {name!r} (expected e.g. map_at_r, precision_at_1, "
                                 f"r_precision, recall_at_<K>, nmi, ami, f1, roc_auc; see docs/reference/metrics.md)")
        if (is_threshold_metric(name) or name == "roc_auc") and far is None:
            raise BenchmarkError(f"--metrics: {name} needs the verification report, which this run had off "
                                 f"(evaluation.verification_far: null)")
        if name.startswith("tar_at_far_") and name != tar_key(far):
            raise BenchmarkError(f"--metrics: {name}: this run chose its verification thresholds for "
                                 f"{tar_key(far)}, not another FAR")
        out.append(name)
    return list(dict.fromkeys(out))


@dataclass
class Reevaluation:
    """What :func:`reevaluate_run` did: the units re-scored, the values compared and added."""

    units: int = 0
    compared: int = 0
    largest_difference: float = 0.0
    worst: str = ""
    added: dict[str, int] = field(default_factory=dict)
    without_embeddings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"re-scored the saved embeddings of {self.units} repeats"]
        if self.compared:
            verdict = (f"the same to {TOLERANCE:g}" if self.largest_difference <= TOLERANCE
                       else f"NOT the same: {self.worst}")
            out.append(f"{self.compared} values already in results.csv: largest difference "
                       f"{self.largest_difference:.2e} ({verdict})")
        if self.added:
            out.append("added to results.csv: " + ", ".join(f"{m} ({n} values)" for m, n in self.added.items()))
        if self.without_embeddings:
            out.append(f"warning: no saved embeddings for {len(self.without_embeddings)} repeats of results.csv "
                       f"(e.g. {self.without_embeddings[0]}): their new metrics are missing")
        return out


def saved_units(run_dir: Path) -> dict[tuple[str, str, int], Path]:
    """``(dataset, method, repeat) -> embeddings.npz`` of every repeat a run folder kept."""
    out = {}
    for path in sorted((Path(run_dir) / ARTIFACTS_DIR).glob(f"*/*/repeat*/{EMBEDDINGS_FILE}")):
        repeat = path.parent.name[len("repeat"):]
        if repeat.isdigit():
            out[(path.parent.parent.parent.name, path.parent.parent.name, int(repeat))] = path
    return out


def reevaluate_run(run_dir: str | Path, metrics: Optional[Sequence[str]] = None) -> Reevaluation:
    """Score ``run_dir``'s saved embeddings for ``metrics`` (default: every test metric of its results.csv),
    compare the values results.csv has and add the others (see the module docstring)."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    results = _read_rows(run_dir / "results.csv") if (run_dir / "results.csv").is_file() else None
    if results is None:
        raise BenchmarkError(f"{run_dir / 'results.csv'} does not exist (is {run_dir} a run folder?)")
    manifest = read_manifest(run_dir)
    units = saved_units(run_dir)
    if not units:
        raise BenchmarkError(f"{run_dir} holds no saved embeddings ({ARTIFACTS_DIR}/<dataset>/<method>/repeat<k>/"
                             f"{EMBEDDINGS_FILE}): run it with --save embeddings (or both) to keep them")
    far = cfg.evaluation.verification_far
    if metrics is None:
        metrics = [m for m in pd.unique(results["metric"]) if m not in PROTOCOL and m != DIVERGED_METRIC]
    wanted = check_metric_names(list(metrics), far)
    datasets = {d.key: d for d in cfg.datasets}
    known = {tuple(k): v for k, v in zip(results[_KEY].itertuples(index=False, name=None), results["value"])}
    display = dict(zip(results["method"], results["display_name"]))
    report = Reevaluation()
    new_rows = []
    for (dataset, method, repeat), path in units.items():
        if dataset not in datasets:
            continue  # (a dataset the run no longer holds)
        dcfg = datasets[dataset]
        emb, meta = read_embeddings(path)
        ks = sorted({*cfg.recall_at_for(dcfg), *(k for k in map(recall_k, wanted) if k is not None)})
        with torch_threads(cfg.training_for(dcfg).threads):  # the run's threads (faiss's k-means among them)
            scores = score_embeddings(emb, recall_at=ks, far=far, seed=cfg.seed,
                                      clustering=any(m in CLUSTERING_METRICS for m in wanted))
        report.units += 1
        for embedding, values in scores.items():
            for metric in wanted:
                if metric not in values:
                    continue
                key = (method, dataset, repeat, embedding, metric)
                value = float(values[metric])
                if key in known:
                    old = float(known[key])
                    diff = 0.0 if (math.isnan(old) and math.isnan(value)) else abs(old - value)
                    report.compared += 1
                    if not diff <= report.largest_difference:
                        report.largest_difference = diff
                        report.worst = f"{dataset}/{method} repeat {repeat} {embedding} {metric}: {old} vs {value}"
                    continue
                new_rows.append(dict(method=method, display_name=display.get(method, meta.get("method", method)),
                                     dataset=dataset, repeat=repeat, embedding=embedding, metric=metric, value=value))
                report.added[metric] = report.added.get(metric, 0) + 1
    saved = set(units)
    report.without_embeddings = sorted(f"{d}/{m} repeat {r}" for m, d, r in
                                       set(results[["method", "dataset", "repeat"]].itertuples(index=False, name=None))
                                       if (d, m, r) not in saved)
    if new_rows:
        _write_added(run_dir, results, manifest, pd.DataFrame(new_rows, columns=list(RESULT_COLUMNS)))
    return report


def _write_added(run_dir: Path, results: pd.DataFrame, manifest: RunManifest, added: pd.DataFrame) -> None:
    """Manifest first (a results.csv always has its metrics described), then evaluated.csv, then results.csv."""
    path = run_dir / EVALUATED_FILE
    before = _read_rows(path) if path.is_file() else pd.DataFrame(columns=list(RESULT_COLUMNS))
    evaluated = pd.concat([before, added], ignore_index=True).drop_duplicates(_KEY, keep="last")
    write_manifest(run_dir, _describe_new(manifest, set(added["metric"])))
    atomic_write(path, lambda p: evaluated.to_csv(p, index=False))
    merged = pd.concat([results, added], ignore_index=True)
    atomic_write(run_dir / "results.csv", lambda p: merged.to_csv(p, index=False))
