"""Ranks across datasets: average ranks, the Friedman test and the Nemenyi critical difference.

Following Demšar ("Statistical comparisons of classifiers over multiple data sets", JMLR 2006):
on each dataset the methods are ranked by their mean over repeats (1 = best, ties share the
average rank, ``scipy.stats.rankdata``); the average ranks over the N datasets are compared with

* the Friedman test (``scipy.stats.friedmanchisquare``; k ≥ 3 methods, N ≥ 2 datasets) and its
  Iman–Davenport F form ``F = (N − 1) χ² / (N (k − 1) − χ²)`` on (k − 1, (k − 1)(N − 1)) degrees of
  freedom, which Demšar recommends;
* the Nemenyi critical difference ``CD = q_α sqrt(k (k + 1) / (6 N))``, with ``q_α`` the
  studentized range quantile over √2 (``scipy.stats.studentized_range``; the values of Demšar's
  Table 5 for k ≤ 10). Two methods whose average ranks differ by less than CD are not
  significantly different.

Only methods with a mean on every dataset of the comparison are ranked; "Pretrained" (a
reference point, not a competitor) is left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.constants import BASELINES
from benchmark.reporting.aggregate import higher_is_better
from benchmark.reporting.significance import ALPHA

#: Columns of :func:`average_ranks`' frame.
RANK_COLUMNS = ("embedding", "metric", "method", "display_name", "average_rank", "n_datasets")
#: Columns of :func:`friedman_tests`' frame.
FRIEDMAN_COLUMNS = ("embedding", "metric", "k", "n_datasets", "chi2", "p_value", "iman_davenport_f",
                    "iman_davenport_p", "critical_difference", "note")


def nemenyi_q(k: int, alpha: float = ALPHA) -> float:
    """Nemenyi's q_α for k methods: the studentized range quantile (infinite df) over √2."""
    if k < 2:
        raise ValueError(f"the Nemenyi test needs at least 2 methods, got {k}")
    return float(stats.studentized_range.ppf(1.0 - alpha, k, np.inf)) / math.sqrt(2.0)


def critical_difference(k: int, n_datasets: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of average ranks for k methods over N datasets."""
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n_datasets))


def rank_matrix(agg: pd.DataFrame, embedding: str, metric: str, *,
                exclude: Sequence[str] = BASELINES) -> pd.DataFrame:
    """Datasets × methods: each method's rank on each dataset (1 = best, ties averaged).

    Methods missing a mean on some dataset are dropped; columns keep the aggregate's order.
    """
    sub = agg[(agg["embedding"] == embedding) & (agg["metric"] == metric)
              & ~agg["method"].isin(list(exclude))]
    means = sub.pivot_table(index="dataset", columns="method", values="mean", sort=False)
    means = means[[m for m in pd.unique(sub["method"]) if m in means.columns]]
    means = means.dropna(axis=1, how="any")
    if means.empty:
        return means
    sign = -1.0 if higher_is_better(sub, metric) else 1.0
    ranks = means.apply(lambda row: pd.Series(stats.rankdata(sign * row.to_numpy()),
                                              index=row.index), axis=1)
    return ranks if not ranks.empty else means


def friedman(ranks: pd.DataFrame, means: pd.DataFrame | None = None,
             alpha: float = ALPHA) -> dict:
    """Friedman test, Iman–Davenport F and Nemenyi CD for a datasets × methods rank matrix.

    ``means`` (same shape, the values ranked) feeds ``scipy.stats.friedmanchisquare``; without it
    the ranks are used (the statistic only depends on the within-dataset ranks). Returns a dict
    with the keys of ``FRIEDMAN_COLUMNS`` but embedding/metric; statistics are NaN and ``note``
    says why when there are fewer than 3 methods or 2 datasets.
    """
    n, k = ranks.shape
    out = {"k": k, "n_datasets": n, "chi2": math.nan, "p_value": math.nan,
           "iman_davenport_f": math.nan, "iman_davenport_p": math.nan,
           "critical_difference": math.nan, "note": ""}
    if k >= 2 and n >= 1:
        out["critical_difference"] = critical_difference(k, n, alpha)
    if n < 2:
        out["note"] = "not enough datasets: the Friedman test needs at least 2"
        return out
    if k < 3:
        out["note"] = "not enough methods: the Friedman test needs at least 3"
        return out
    data = ranks if means is None else means
    res = stats.friedmanchisquare(*[data[c].to_numpy(dtype=float) for c in data.columns])
    chi2 = float(res.statistic)
    out["chi2"], out["p_value"] = chi2, float(res.pvalue)
    denom = n * (k - 1) - chi2
    if denom > 0:
        f = (n - 1) * chi2 / denom
        out["iman_davenport_f"] = f
        out["iman_davenport_p"] = float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))
    return out


def _comparisons(agg: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(agg["embedding"], agg["metric"])))


def average_ranks(agg: pd.DataFrame, *, exclude: Sequence[str] = BASELINES) -> pd.DataFrame:
    """Per (embedding, metric): every ranked method's average rank over the datasets, best first."""
    display = dict(zip(agg["method"], agg["display_name"]))
    rows = []
    for emb, metric in _comparisons(agg):
        ranks = rank_matrix(agg, emb, metric, exclude=exclude)
        if ranks.empty:
            continue
        for method, rank in ranks.mean(axis=0).sort_values(kind="stable").items():
            rows.append({"embedding": emb, "metric": metric, "method": method,
                         "display_name": display.get(method, method),
                         "average_rank": float(rank), "n_datasets": int(len(ranks))})
    return pd.DataFrame(rows, columns=list(RANK_COLUMNS))


def friedman_tests(agg: pd.DataFrame, *, exclude: Sequence[str] = BASELINES,
                   alpha: float = ALPHA) -> pd.DataFrame:
    """Per (embedding, metric): :func:`friedman` on the datasets × methods ranks."""
    rows = []
    for emb, metric in _comparisons(agg):
        ranks = rank_matrix(agg, emb, metric, exclude=exclude)
        if ranks.empty:
            continue
        rows.append({"embedding": emb, "metric": metric, **friedman(ranks, alpha=alpha)})
    return pd.DataFrame(rows, columns=list(FRIEDMAN_COLUMNS))


def cliques(order: Sequence[str], not_different: Callable[[str, str], bool]) -> list[list[str]]:
    """Maximal runs of consecutive items of ``order`` (at least two) whose every pair is
    ``not_different``: the bars of a critical-difference diagram."""
    runs: list[list[str]] = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and all(not_different(order[x], order[j + 1])
                                         for x in range(i, j + 1)):
            j += 1
        if j > i and not any(i >= a and j <= b for a, b in
                             ((order.index(r[0]), order.index(r[-1])) for r in runs)):
            runs.append(list(order[i:j + 1]))
    return runs


def nemenyi_cliques(avg: Mapping[str, float], cd: float) -> list[list[str]]:
    """Groups of methods whose average ranks lie within ``cd`` of each other (best first)."""
    order = sorted(avg, key=lambda m: avg[m])
    return cliques(order, lambda a, b: abs(avg[a] - avg[b]) < cd)
