"""Figures of a run: metric bars with 95% intervals, optimisation histories, validation curves.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, no global backend or
style change at import or call time) and saved as PNG and PDF. Each function returns the paths
it wrote; :func:`write_plots` makes whatever the run folder's CSV files allow.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from benchmark.constants import CONCATENATED, METRICS
from benchmark.io import atomic_write
from benchmark.manifest import read_manifest
from benchmark.metric_catalog import VALIDATION_METRIC, recall_key
from benchmark.reporting.aggregate import (
    SEPARATED,
    aggregate,
    metric_labels,
    read_curves,
    read_results,
    read_trials,
)
from benchmark.reporting.diagnostics import LATE_FRACTION
from benchmark.reporting.tables import recall_ks

#: Formats every figure is saved in.
PLOT_FORMATS = ("png", "pdf")
_EMBEDDING_LABEL = {CONCATENATED: "Concatenated", SEPARATED: "Separated"}


def safe_stem(name: str) -> str:
    """``name`` reduced to characters safe in a file name (others become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "x"


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Save ``fig`` as ``out_dir/<stem>.png`` and ``.pdf`` (atomically, without timestamps)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in PLOT_FORMATS:
        metadata = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        # a temporary file of this process's own (several workers may render the same plot at once)
        paths.append(atomic_write(out_dir / f"{stem}.{ext}", lambda p, ext=ext, metadata=metadata: fig.savefig(
            p, format=ext, dpi=150, bbox_inches="tight", metadata=metadata), suffix=f".tmp.{ext}"))
    return paths


def _grid(n: int, *, ncols: int = 4, width: float = 3.6, height: float = 2.8) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def plot_metric_bars(agg: pd.DataFrame, dataset: str, out_dir: str | os.PathLike, *,
                     metrics: Sequence[str] = METRICS,
                     embeddings: Sequence[str] = (CONCATENATED, SEPARATED),
                     name: str = "metrics") -> list[Path]:
    """Bars of each method's mean (percent) per metric, with the 95% interval as error bars.

    One panel per metric (titled with its label), one bar per method and embedding (a single
    evaluation, n = 1, has no error bar); the legend names each embedding with its dimension, both
    as ``agg``'s rows have them from the run's manifest. Writes ``<dataset>_<name>.png`` and
    ``.pdf`` under ``out_dir``; returns [] when ``dataset`` has none of ``metrics``.
    """
    sub = agg[(agg["dataset"] == dataset) & agg["metric"].isin(metrics)
              & agg["embedding"].isin(embeddings)]
    if sub.empty:
        return []
    shown = [m for m in metrics if m in set(sub["metric"])]
    embs = [e for e in embeddings if e in set(sub["embedding"])]
    methods = list(dict.fromkeys(zip(sub["method"], sub["display_name"])))
    labels = metric_labels(sub)
    dims = dict(zip(sub["embedding"], sub["dim"]))
    fig, axes = _grid(len(shown), ncols=min(len(shown), 3), width=max(3.5, 0.45 * len(methods) + 1.5),
                      height=3.6)
    x = np.arange(len(methods))
    width = 0.8 / len(embs)
    for ax, metric in zip(axes, shown):
        for j, emb in enumerate(embs):
            rows = sub[(sub["metric"] == metric) & (sub["embedding"] == emb)].set_index("method")
            means = np.array([100 * rows["mean"].get(m, np.nan) for m, _ in methods], dtype=float)
            hws = np.array([100 * rows["half_width"].get(m, np.nan) for m, _ in methods],
                           dtype=float)
            pos = x + (j - (len(embs) - 1) / 2) * width
            ax.bar(pos, np.nan_to_num(means), width, label=f"{_EMBEDDING_LABEL.get(emb, emb)} ({dims[emb]}-dim)")
            ok = np.isfinite(means) & np.isfinite(hws)
            if ok.any():
                ax.errorbar(pos[ok], means[ok], yerr=hws[ok], fmt="none", ecolor="black",
                            elinewidth=0.8, capsize=2)
        ax.set_xticks(x, [d for _, d in methods], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(f"{labels[metric]} (%)")
        ax.set_title(labels[metric])
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{dataset}: mean over repeats, 95% CI")
    return save_figure(fig, Path(out_dir), f"{safe_stem(dataset)}_{safe_stem(name)}")


def _fold_mean(text: object) -> float:
    """The mean of a ``fold_values`` JSON list (NaN when empty, missing or malformed)."""
    try:
        values = [float(v) for v in json.loads(str(text)) if v is not None]
    except (TypeError, ValueError):
        return math.nan
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def plot_optimisation_history(trials_df: pd.DataFrame, out_dir: str | os.PathLike, *,
                              display_names: Mapping[str, str] | None = None) -> list[Path]:
    """Per dataset, one panel per method: each trial's value and the running best, with the
    last fifth of the trials shaded (a best found there means the search may not have converged).

    COMPLETE trials are dots (their validation MAP@R); PRUNED trials are crosses at the mean of
    the folds they finished (``fold_values``), or at the bottom of the panel when they finished
    none; the running best is over COMPLETE trials. Trial numbers are integer ticks. FAILED and
    unfinished trials are left out. ``display_names`` maps method names to the panel titles
    (default: the method names). Writes ``<dataset>_optimisation.png`` and ``.pdf`` per dataset
    under ``out_dir``.
    """
    df = trials_df.copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df["trial"] = pd.to_numeric(df["trial"], errors="coerce")
    state = (df["state"].astype(str).str.upper().str.replace("TRIALSTATE.", "", regex=False)
             if "state" in df else pd.Series("COMPLETE", index=df.index))
    df["_pruned"] = state == "PRUNED"
    df = df[((state == "COMPLETE") & df["value"].notna()) | df["_pruned"]].dropna(subset=["trial"])
    fold_means = (pd.Series([_fold_mean(t) for t in df["fold_values"]], index=df.index, dtype=float)
                  if "fold_values" in df else pd.Series(math.nan, index=df.index, dtype=float))
    df["value"] = df["value"].where(~df["_pruned"], fold_means)
    paths: list[Path] = []
    for dataset, dgrp in df.groupby("dataset", sort=False):
        methods = list(pd.unique(dgrp["method"]))
        fig, axes = _grid(len(methods))
        for ax, method in zip(axes, methods):
            grp = dgrp[dgrp["method"] == method].sort_values("trial")
            done, pruned = grp[~grp["_pruned"]], grp[grp["_pruned"]]
            if len(grp) > 1:  # the last fifth of the budget: a best found there is a warning
                first_late = grp["trial"].iloc[int(math.floor((1 - LATE_FRACTION) * len(grp)))]
                ax.axvspan(first_late - 0.5, grp["trial"].iloc[-1] + 0.5, color="0.9",
                           label=f"last {LATE_FRACTION:.0%} of trials")
            if len(done):
                ax.scatter(done["trial"], 100 * done["value"], s=10, alpha=0.6, label="trial")
                ax.step(done["trial"], 100 * done["value"].cummax(), where="post", color="C3",
                        label="best so far")
            scored = pruned[pruned["value"].notna()]
            if len(scored):
                ax.scatter(scored["trial"], 100 * scored["value"], s=22, marker="x", color="0.35",
                           label="pruned (mean of its folds so far)")
            unscored = pruned[pruned["value"].isna()]
            if len(unscored):  # no fold finished: at the bottom of the panel
                ax.scatter(unscored["trial"], np.full(len(unscored), 0.03), s=22, marker="x", color="0.6",
                           transform=ax.get_xaxis_transform(), label="pruned (no fold finished)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(str((display_names or {}).get(method, method)), fontsize=9)
            ax.set_xlabel("trial")
            ax.set_ylabel("validation MAP@R (%)")
            ax.grid(alpha=0.3)
        legend: dict[str, object] = {}  # every panel's entries (pruned trials may be in any of them)
        for ax in axes:
            for handle, text in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(text, handle)
        axes[0].legend(list(legend.values()), list(legend), fontsize=7)
        fig.suptitle(f"{dataset}: hyperparameter search")
        paths += save_figure(fig, Path(out_dir), f"{safe_stem(dataset)}_optimisation")
    return paths


def plot_validation_curves(curves_df: pd.DataFrame, out_dir: str | os.PathLike, *,
                           labels: Mapping[str, str], metric: str = VALIDATION_METRIC,
                           display_names: Mapping[str, str] | None = None) -> list[Path]:
    """Per dataset, one panel per method: validation ``metric`` along iterations.

    One line per (repeat, fold), coloured by repeat. Rows of other metrics are ignored; when
    ``metric`` is absent the first metric present is drawn; ``labels`` (metric → label, the run
    manifest's) names it; ``display_names`` as in :func:`plot_optimisation_history`. Writes
    ``<dataset>_validation.png`` and ``.pdf`` per dataset under ``out_dir``.
    """
    df = curves_df.copy()
    for col in ("repeat", "fold", "iteration", "value"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df = df.dropna(subset=["iteration", "value"])
    if df.empty:
        return []
    if metric not in set(df["metric"]):
        metric = str(df["metric"].iloc[0])
    df = df[df["metric"] == metric]
    paths: list[Path] = []
    for dataset, dgrp in df.groupby("dataset", sort=False):
        methods = list(pd.unique(dgrp["method"]))
        fig, axes = _grid(len(methods))
        for ax, method in zip(axes, methods):
            mgrp = dgrp[dgrp["method"] == method]
            repeats = sorted(pd.unique(mgrp["repeat"].fillna(-1)))
            for i, repeat in enumerate(repeats):
                rgrp = mgrp[mgrp["repeat"].fillna(-1) == repeat]
                for j, (_, fgrp) in enumerate(rgrp.groupby(rgrp["fold"].fillna(-1), sort=True)):
                    fgrp = fgrp.sort_values("iteration")
                    ax.plot(fgrp["iteration"], 100 * fgrp["value"], color=f"C{i % 10}",
                            lw=0.8, alpha=0.7,
                            label=f"repeat {int(repeat)}" if j == 0 and len(repeats) <= 10 else None)
            ax.set_title(str((display_names or {}).get(method, method)), fontsize=9)
            ax.set_xlabel("iteration")
            ax.set_ylabel(f"{labels[metric]} (%)")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
        fig.suptitle(f"{dataset}: {labels[metric]} (one line per fold)")
        paths += save_figure(fig, Path(out_dir), f"{safe_stem(dataset)}_validation")
    return paths


def write_plots(run_dir: str | os.PathLike) -> list[Path]:
    """Write ``run_dir/plots/`` from whatever CSV files the run folder has; return the paths.

    ``results.csv``: metric bars per dataset (and Recall@K bars where there are ``recall_at_K``
    with K > 1); ``trials.csv``: optimisation histories; ``curves.csv``: validation curves.
    Missing files are skipped; labels and dimensions come from ``manifest.json``, which must exist
    beside ``results.csv`` or ``curves.csv``.
    """
    run_dir = Path(run_dir)
    out_dir = run_dir / "plots"
    paths: list[Path] = []
    names: dict[str, str] = {}
    if (run_dir / "results.csv").exists():
        agg = aggregate(read_results(run_dir / "results.csv"), read_manifest(run_dir))
        names = dict(zip(agg["method"], agg["display_name"]))
        for dataset in pd.unique(agg["dataset"]):
            paths += plot_metric_bars(agg, str(dataset), out_dir)
            ks = recall_ks(agg, str(dataset))
            if any(k > 1 for k in ks):
                paths += plot_metric_bars(agg, str(dataset), out_dir, name="recall",
                                          metrics=[recall_key(k) for k in ks])
    if (run_dir / "trials.csv").exists():
        paths += plot_optimisation_history(read_trials(run_dir / "trials.csv"), out_dir,
                                           display_names=names)
    if (run_dir / "curves.csv").exists():
        paths += plot_validation_curves(read_curves(run_dir / "curves.csv"), out_dir,
                                        labels={k: m.label for k, m in read_manifest(run_dir).metrics.items()},
                                        display_names=names)
    return paths
