"""Critical-difference diagrams (Demšar 2006): methods placed by rank, bars join those not
significantly different.

:func:`plot_cd_diagram` draws any such diagram from positions and groups; :func:`write_cd_diagrams`
makes one per (embedding, metric) of a run with at least three ranked methods (Pretrained is not ranked;
with two, the pairwise tests say all there is):

* with at least two datasets, the positions are the average ranks and the bars join methods
  within Nemenyi's critical difference (drawn as a scale bar);
* with a single dataset there is no Friedman/Nemenyi test: the positions are the ranks of the
  means on that dataset and the bars join methods that the pairwise Welch tests (Holm, α = 0.05)
  do not separate; the title says so.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from benchmark.constants import BASELINES, METRICS
from benchmark.reporting.aggregate import higher_is_better, metric_labels
from benchmark.reporting.plots import safe_stem, save_figure
from benchmark.reporting.ranking import (
    average_ranks,
    cliques,
    friedman_tests,
    nemenyi_cliques,
    rank_matrix,
)
from benchmark.reporting.significance import ALPHA, compare_pairs

_EMB = {"concatenated": "concatenated", "separated": "separated"}
#: The fewest ranked methods a diagram is drawn for: with two, their order is all it could show (the
#: pairwise tests say whether it is significant).
MIN_CD_METHODS = 3
#: The diagram ``report.html`` shows (the others are linked): the headline metric.
HEADLINE = ("concatenated", "map_at_r")


def plot_cd_diagram(ranks: Mapping[str, float], groups: Sequence[Sequence[str]], *,
                    labels: Mapping[str, str] | None = None, cd: float | None = None,
                    title: str = "") -> Figure:
    """A CD diagram: an axis of ranks (1 on the left), each method's label joined to its rank,
    the better half on the left and the rest on the right, and one bar per group."""
    order = sorted(ranks, key=lambda m: ranks[m])
    k = len(order)
    lo, hi = 1.0, max(float(k), max(ranks.values()), 2.0)
    half = (k + 1) // 2
    n_rows = max(half, k - half)
    height = 1.2 + 0.28 * n_rows + 0.18 * len(groups)
    fig = Figure(figsize=(8.0, height), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(lo - 0.35 * (hi - lo) - 0.5, hi + 0.35 * (hi - lo) + 0.5)
    top = 0.0
    bottom = -(0.6 + 0.4 * n_rows + 0.25 * len(groups))
    ax.set_ylim(bottom, 1.1 if cd else 0.7)
    ax.axis("off")
    ax.plot([lo, hi], [top, top], color="black", lw=1)
    for r in range(1, int(hi) + 1):
        ax.plot([r, r], [top, top + 0.12], color="black", lw=1)
        ax.text(r, top + 0.18, str(r), ha="center", va="bottom", fontsize=8)
    if cd:
        ax.plot([lo, lo + cd], [0.85, 0.85], color="black", lw=1.5)
        for x in (lo, lo + cd):
            ax.plot([x, x], [0.8, 0.9], color="black", lw=1)
        ax.text(lo + cd / 2, 0.92, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8)
    names = labels or {}
    for i, method in enumerate(order):
        left = i < half
        row = i if left else k - 1 - i
        y = -(0.5 + 0.4 * row + 0.25 * len(groups))
        x_end = lo - 0.3 if left else hi + 0.3
        ax.plot([ranks[method], ranks[method], x_end], [top, y, y], color="0.3", lw=0.8)
        ax.text(x_end + (-0.05 if left else 0.05), y,
                f"{names.get(method, method)} ({ranks[method]:.2f})",
                ha="right" if left else "left", va="center", fontsize=8)
    for j, group in enumerate(groups):
        xs = [ranks[m] for m in group]
        y = -(0.2 + 0.25 * j)
        ax.plot([min(xs) - 0.05, max(xs) + 0.05], [y, y], color="C3", lw=3,
                solid_capstyle="round")
    if title:
        ax.set_title(textwrap.fill(title, 110), fontsize=8)
    return fig


def _diagram_frame(agg: pd.DataFrame) -> pd.DataFrame:
    """The main metrics (P@1, RP, MAP@R) of ``agg`` when it has them, else all of it."""
    return agg[agg["metric"].isin(METRICS)] if agg["metric"].isin(METRICS).any() else agg


def cd_diagram_stems(agg: pd.DataFrame) -> list[str]:
    """The file stems :func:`write_cd_diagrams` writes for ``agg``, in its order."""
    ranks = average_ranks(_diagram_frame(agg))
    counts = ranks.groupby(["embedding", "metric"], sort=False).size()
    return [cd_stem(str(e), str(m)) for (e, m), n in counts.items() if n >= MIN_CD_METHODS]


def cd_stem(embedding: str, metric: str) -> str:
    """``cd_<embedding>_<metric>``: the file stem of a diagram."""
    return f"cd_{safe_stem(embedding)}_{safe_stem(metric)}"


def write_cd_diagrams(agg: pd.DataFrame, out_dir: str | os.PathLike, *,
                      alpha: float = ALPHA) -> list[Path]:
    """One diagram per (embedding, metric) with at least ``MIN_CD_METHODS`` ranked methods, for the main metrics
    (P@1, RP, MAP@R) when the run has them, else for every metric; returns the paths
    (``cd_<embedding>_<metric>.png`` and ``.pdf``)."""
    display = dict(zip(agg["method"], agg["display_name"]))
    labels = metric_labels(agg)
    agg = _diagram_frame(agg)
    ranks_df = average_ranks(agg)
    tests = friedman_tests(agg)
    paths: list[Path] = []
    for (emb, metric), grp in ranks_df.groupby(["embedding", "metric"], sort=False):
        if len(grp) < MIN_CD_METHODS:
            continue
        avg = dict(zip(grp["method"], grp["average_rank"]))
        n = int(grp["n_datasets"].iloc[0])
        label = f"{labels[metric]}, {_EMB.get(str(emb), emb)}"
        if n >= 2:
            test = tests[(tests["embedding"] == emb) & (tests["metric"] == metric)].iloc[0]
            cd = float(test["critical_difference"])
            groups = nemenyi_cliques(avg, cd)
            p = test["p_value"]
            ptext = f", Friedman p = {p:.3g}" if pd.notna(p) else ""
            title = (f"{label}: average ranks over {n} datasets{ptext}; bars join methods within "
                     f"the Nemenyi CD (α = {alpha:g})")
        else:
            cd = None
            dataset = str(agg["dataset"].iloc[0])
            sub = agg[(agg["dataset"] == dataset) & (agg["embedding"] == emb)
                      & (agg["metric"] == metric) & (~agg["method"].isin(BASELINES))]
            values = {str(r.method): r.values for r in sub.itertuples(index=False)
                      if r.method in avg}
            pairs = compare_pairs(values, higher=higher_is_better(agg, str(metric)), alpha=alpha)
            separated = {frozenset((r.method_a, r.method_b)) for r in pairs.itertuples(index=False)
                         if r.p_holm < alpha}
            order = list(rank_matrix(agg, str(emb), str(metric)).iloc[0].sort_values().index)
            groups = cliques(order, lambda a, b, s=separated: frozenset((a, b)) not in s)
            title = (f"{label} on {dataset} (one dataset: no Friedman test): ranks of the means; "
                     f"bars join methods not separated by Welch tests (Holm, α = {alpha:g})")
        fig = plot_cd_diagram(avg, groups, labels=display, cd=cd, title=title)
        paths += save_figure(fig, Path(out_dir), cd_stem(str(emb), str(metric)))
    return paths
