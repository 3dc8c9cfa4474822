"""Read a run's result files and aggregate the repeats: mean and Student-t 95% interval per cell.

``results.csv`` holds one row per value (``RESULT_COLUMNS``): the ``embedding`` column is
``fold{i}`` for the i-th fold model on its own or ``concatenated`` for the folds' normalised
embeddings joined. :func:`aggregate` turns it into one row per
(method, dataset, embedding, metric) with ``embedding`` in {"concatenated", "separated"}:

* concatenated: the repeats' ``concatenated`` values;
* separated: per repeat, the mean over that repeat's fold rows; then the repeats.

The half-width is that of ``scipy.stats.t.interval(confidence, n - 1, loc=mean, scale=sem)``,
as in the reality-check protocol; with a single repeat it is NaN (shown without ``±``).
Values stay fractions here; tables and plots convert to percent.

Every row also carries what the run's manifest (:mod:`benchmark.manifest`) says of it: the metric's
``label``, ``unit`` and ``higher_is_better``, and the embedding's ``dim`` (the concatenation's, or a
fold model's for "separated"), so that tables, plots and tests read them instead of guessing.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.constants import (
    CONCATENATED,
    COST_COLUMNS,
    CURVE_COLUMNS,
    BASELINES,
    RESULT_COLUMNS,
    TRIAL_COLUMNS,
    TRIAL_LATER_COLUMNS,
)
from benchmark.errors import BenchmarkError
from benchmark.manifest import RunManifest, read_manifest

#: The ``embedding`` value of the per-repeat mean over the fold models.
SEPARATED = "separated"
#: Columns of the frame returned by :func:`aggregate`.
AGGREGATE_COLUMNS = ("method", "display_name", "dataset", "embedding", "metric", "mean",
                     "half_width", "n", "values", "label", "unit", "higher_is_better", "dim")
#: The columns :func:`describe_rows` adds from the manifest (the last ones of ``AGGREGATE_COLUMNS``).
DESCRIPTION_COLUMNS = ("label", "unit", "higher_is_better", "dim")

_FOLD_RE = re.compile(r"^fold(\d+)$")
_KEY = ["method", "dataset", "repeat", "embedding", "metric"]


def read_csv_checked(path: str | os.PathLike, columns: Sequence[str], *,
                     what: str = "file", comment: str | None = None,
                     optional: Sequence[str] = ()) -> pd.DataFrame:
    """Read the CSV at ``path`` and check that its header is exactly ``columns`` (any order).

    A missing, unreadable or empty file, or a missing or extra column, raises
    :class:`BenchmarkError` naming the file and the expected columns. The returned frame has its
    columns in the order of ``columns``. ``comment`` is passed to ``pandas.read_csv``. Columns
    named in ``optional`` (files written before they existed lack them) may be missing: they
    come back empty (NaN).
    """
    path = Path(path)
    expected = ", ".join(columns)
    try:
        df = pd.read_csv(path, comment=comment)
    except FileNotFoundError:
        raise BenchmarkError(f"{what} {path} does not exist (expected a CSV with columns: "
                             f"{expected})") from None
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        detail = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise BenchmarkError(f"cannot read {what} {path}: {detail} (expected a CSV with columns: "
                             f"{expected})") from None
    found = [str(c) for c in df.columns]
    for col in optional:
        if col not in found:
            df[col] = np.nan
    found = [str(c) for c in df.columns]
    missing = [c for c in columns if c not in found]
    extra = [c for c in found if c not in columns]
    if missing or extra or len(found) != len(set(found)):
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"unexpected {extra}")
        if not parts:
            parts.append("duplicated column names")
        raise BenchmarkError(f"{what} {path} has the wrong header ({'; '.join(parts)}); "
                             f"expected columns: {expected}")
    return df[list(columns)]


def _numeric(df: pd.DataFrame, column: str, path: Path, *, integer: bool = False) -> pd.Series:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna()
    if integer:
        bad |= values.isna() | (values.notna() & (values != np.round(values)))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise BenchmarkError(f"{path}: column {column!r} must be "
                             f"{'an integer' if integer else 'numeric'}; row {row + 2} has "
                             f"{df[column].iloc[row]!r}")
    return values.astype("int64") if integer else values.astype("float64")


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a run's ``results.csv`` (columns ``RESULT_COLUMNS``).

    Raises :class:`BenchmarkError` naming the file and the expected columns when the file is
    missing or unreadable or its header differs, and naming the row when ``repeat`` is not an
    integer or ``value`` is not numeric.
    """
    path = Path(path)
    df = read_csv_checked(path, RESULT_COLUMNS, what="results file")
    df = df.copy()
    for col in ("method", "display_name", "dataset", "embedding", "metric"):
        if df[col].isna().any():
            row = int(np.flatnonzero(df[col].isna().to_numpy())[0])
            raise BenchmarkError(f"{path}: column {col!r} is empty in row {row + 2}")
        df[col] = df[col].astype(str)
    df["repeat"] = _numeric(df, "repeat", path, integer=True)
    df["value"] = _numeric(df, "value", path)
    return df.reset_index(drop=True)


def read_trials(path: str | os.PathLike) -> pd.DataFrame:
    """Read a run's ``trials.csv`` (columns ``TRIAL_COLUMNS``); numbers become numeric.

    Files written before the cost columns (``TRIAL_COST_COLUMNS``) existed are read with those
    columns empty.
    """
    path = Path(path)
    df = read_csv_checked(path, TRIAL_COLUMNS, what="trials file",
                          optional=TRIAL_LATER_COLUMNS).copy()
    for col in ("trial", "value", "wall_seconds", "iterations"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def read_cost(path: str | os.PathLike) -> pd.DataFrame | None:
    """Read a run's ``cost.csv`` (columns ``COST_COLUMNS``); None when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    df = read_csv_checked(path, COST_COLUMNS, what="cost file").copy()
    for col in ("unit", "wall_seconds", "iterations"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def read_curves(path: str | os.PathLike) -> pd.DataFrame:
    """Read a run's ``curves.csv`` (columns ``CURVE_COLUMNS``); numbers become numeric."""
    path = Path(path)
    df = read_csv_checked(path, CURVE_COLUMNS, what="curves file").copy()
    for col in ("repeat", "fold", "epoch", "iteration", "value"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def t_half_width(values: Sequence[float], confidence: float = 0.95) -> float:
    """Half-width of the Student-t ``confidence`` interval of the mean of ``values``.

    ``scipy.stats.t.interval(confidence, n - 1, loc=mean, scale=sem)``, halved; NaN when
    ``n < 2``; 0 when all values are equal.
    """
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 2:
        return math.nan
    if np.ptp(x) == 0:  # identical values (scipy would warn of precision loss on their rounding residue)
        return 0.0
    sem = float(stats.sem(x))
    if sem == 0.0:
        return 0.0
    lo, hi = stats.t.interval(confidence, n - 1, loc=float(x.mean()), scale=sem)
    return float(hi - lo) / 2.0


def method_order(results: pd.DataFrame) -> list[str]:
    """Methods in order of first appearance, with the baselines (``pretrained``, then ``raw_trunk``) first."""
    methods = list(pd.unique(results["method"]))
    first = [m for m in BASELINES if m in methods]
    return first + [m for m in methods if m not in first]


def _check_frame(results: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise BenchmarkError(f"results frame lacks column(s) {missing}; expected columns: "
                             f"{', '.join(RESULT_COLUMNS)}")
    df = results[list(RESULT_COLUMNS)].copy()
    emb = df["embedding"].astype(str)
    bad = ~(emb.eq(CONCATENATED) | emb.str.fullmatch(_FOLD_RE.pattern))
    if bad.any():
        raise BenchmarkError(f"unknown embedding value(s) {sorted(set(emb[bad]))} in results; "
                             f"expected {CONCATENATED!r} or 'fold<i>'")
    dup = df.duplicated(_KEY, keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        raise BenchmarkError("duplicate result rows for " + ", ".join(
            f"{k}={first[k]!r}" for k in _KEY))
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype("float64")
    return df


def describe_rows(frame: pd.DataFrame, manifest: RunManifest) -> pd.DataFrame:
    """``frame`` (with ``embedding`` and ``metric`` columns) with ``DESCRIPTION_COLUMNS`` from ``manifest``.

    A metric or embedding the manifest does not describe raises ``BenchmarkError`` naming the file.
    """
    out = frame.copy()
    infos = [manifest.metric(str(m)) for m in out["metric"]]
    out["label"] = [i.label for i in infos]
    out["unit"] = [i.unit for i in infos]
    out["higher_is_better"] = pd.Series([i.higher_is_better for i in infos], index=out.index, dtype=bool)
    out["dim"] = pd.Series([manifest.fold_dim() if e == SEPARATED else manifest.dim(str(e))
                            for e in out["embedding"]], index=out.index, dtype="int64")
    return out


def metric_labels(agg: pd.DataFrame) -> dict[str, str]:
    """Metric name → label, from an aggregate frame's rows."""
    return dict(zip(agg["metric"], agg["label"]))


def higher_is_better(agg: pd.DataFrame, metric: str) -> bool:
    """Whether a larger ``metric`` is better, from an aggregate frame's rows (``BenchmarkError`` if absent)."""
    rows = agg.loc[agg["metric"] == metric, "higher_is_better"]
    if rows.empty:
        raise BenchmarkError(f"no aggregate row describes metric {metric!r}")
    return bool(rows.iloc[0])


def aggregate(results: pd.DataFrame, manifest: RunManifest, confidence: float = 0.95) -> pd.DataFrame:
    """Aggregate ``results`` (``RESULT_COLUMNS``) over repeats; describe the rows from ``manifest``.

    Returns one row per (method, dataset, embedding, metric) with columns ``AGGREGATE_COLUMNS``:
    ``embedding`` is "concatenated" or "separated" (per repeat the mean over its fold rows),
    ``mean`` the mean over repeats, ``half_width`` the half-width of the Student-t ``confidence``
    interval (NaN when ``n == 1``), ``n`` the number of repeats with a value and ``values`` the
    per-repeat values (a tuple, by increasing repeat). NaN values are left out of the statistics.
    Rows keep the methods' order of first appearance (``pretrained`` first), then datasets and
    metrics in order of first appearance, concatenated before separated. ``DESCRIPTION_COLUMNS``
    come from ``manifest`` (:func:`describe_rows`).
    """
    if not 0.0 < confidence < 1.0:
        raise BenchmarkError(f"confidence must be in (0, 1), got {confidence}")
    df = _check_frame(results)
    for embedding in pd.unique(df["embedding"]):  # the manifest must be this run's: its folds, no others
        manifest.dim(str(embedding))
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in AGGREGATE_COLUMNS})
    display = df.drop_duplicates("method").set_index("method")["display_name"].astype(str)

    concat = df[df["embedding"] == CONCATENATED]
    folds = df[df["embedding"] != CONCATENATED]
    per_repeat = [concat.assign(embedding=CONCATENATED)[_KEY + ["value"]]]
    if not folds.empty:
        sep = (folds.groupby(["method", "dataset", "repeat", "metric"], sort=False)["value"]
               .mean().reset_index().assign(embedding=SEPARATED))
        per_repeat.append(sep[_KEY + ["value"]])
    long = pd.concat(per_repeat, ignore_index=True)

    rows = []
    for (method, dataset, embedding, metric), grp in long.groupby(
            ["method", "dataset", "embedding", "metric"], sort=False):
        grp = grp.sort_values("repeat")
        vals = tuple(float(v) for v in grp["value"] if not math.isnan(v))
        n = len(vals)
        rows.append({
            "method": method, "display_name": display[method], "dataset": dataset,
            "embedding": embedding, "metric": metric,
            "mean": float(np.mean(vals)) if n else math.nan,
            "half_width": t_half_width(vals, confidence), "n": n, "values": vals,
        })
    statistics = [c for c in AGGREGATE_COLUMNS if c not in DESCRIPTION_COLUMNS]
    out = describe_rows(pd.DataFrame(rows, columns=statistics), manifest)

    def rank(series: pd.Series, order: list[str]) -> pd.Series:
        return series.map({v: i for i, v in enumerate(order)})

    keys = pd.DataFrame({
        "m": rank(out["method"], method_order(df)),
        "d": rank(out["dataset"], list(pd.unique(df["dataset"]))),
        "e": rank(out["embedding"], [CONCATENATED, SEPARATED]),
        "k": rank(out["metric"], list(pd.unique(df["metric"]))),
    })
    order = keys.sort_values(["d", "m", "e", "k"], kind="stable").index
    out = out.loc[order].reset_index(drop=True)
    out["n"] = out["n"].astype("int64")
    out.attrs["confidence"] = confidence
    out.attrs["pooling"] = manifest.pooling  # what n counts, for the tables' legends
    return out


def aggregate_run(run_dir: str | os.PathLike, confidence: float = 0.95) -> pd.DataFrame:
    """``aggregate(read_results(run_dir / "results.csv"), read_manifest(run_dir), confidence)``."""
    return aggregate(read_results(Path(run_dir) / "results.csv"), read_manifest(run_dir), confidence)


def aggregate_to_csv_frame(agg: pd.DataFrame) -> pd.DataFrame:
    """``agg`` with ``values`` as a JSON list string, fit for ``DataFrame.to_csv``."""
    out = agg.copy()
    out["values"] = ["[" + ", ".join(repr(float(v)) for v in vals) + "]" for vals in out["values"]]
    return out
