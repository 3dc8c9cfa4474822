"""Which differences between methods are real: pairwise tests over repeats, Holm-corrected.

For one dataset, embedding and metric, every pair of methods (A, B) is compared on its repeats
(independent retrainings, so unpaired):

* Welch's two-sample t-test (the formulas of ``scipy.stats.ttest_ind(equal_var=False)``),
  two-sided. Identical repeats have variance exactly 0 (not numpy's rounding residue, on which
  scipy warns of "catastrophic cancellation"): one constant side leaves the other's spread; two
  constant and equal samples get p = 1 (nothing distinguishes them), two constant but different
  samples p = 0.
* Holm's step-down correction (:func:`holm`) over the family of all tested pairs of the column.
* The effect: the mean difference A − B with its Welch 95% interval, and Hedges' g (pooled
  standard deviation, small-sample correction) with the usual normal-approximation interval
  ``g ± z · sqrt((nA + nB)/(nA nB) + g²/(2 (nA + nB)))``.
* P(A beats B): the probability that a new repeat of A scores better than a new repeat of B,
  estimated from all repeat pairs (a_i, b_j) with ties counted ½ (Bouthillier et al., "Accounting
  for variance in machine learning benchmarks", MLSys 2021); it equals the Mann–Whitney U
  statistic divided by nA·nB.

A pair with fewer than two repeats on either side is not tested (NaN, shown "n/a"). The
*significance group* of a column is the best-scoring tested method and every tested method whose
Holm-adjusted p-value against it is at least α: the methods not significantly worse than the best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.constants import DIVERGED_METRIC

#: Significance level of the tests and of the groups marked in the tables.
ALPHA = 0.05
#: Columns of the frame returned by :func:`pairwise_comparisons` (values are fractions).
PAIRWISE_COLUMNS = ("dataset", "embedding", "metric", "method_a", "method_b", "n_a", "n_b",
                    "mean_a", "mean_b", "difference", "difference_low", "difference_high",
                    "hedges_g", "hedges_g_low", "hedges_g_high", "t", "df", "p_value", "p_holm",
                    "significant", "p_a_beats_b")
#: One line saying what the tests are, for legends.
TEST_LEGEND = (f"two-sided Welch t-test over repeats, Holm-corrected over all pairs of the column, "
               f"α = {ALPHA:g}")
def _clean(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[~np.isnan(x)]


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN entries stay NaN and are not counted in the family.

    Sorted ascending, the i-th smallest of m gets ``max_{j<=i} min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def sample_variance(x: np.ndarray) -> float:
    """The sample variance (ddof 1), exactly 0 for identical values (numpy's rounding of the mean
    leaves a tiny positive variance that scipy warns about and a t-test would divide by)."""
    return 0.0 if x.size < 2 or np.ptp(x) == 0 else float(x.var(ddof=1))


def constant(values: Sequence[float]) -> bool:
    """Whether ``values`` has at least two values and all are identical (zero spread)."""
    x = _clean(values)
    return x.size >= 2 and np.ptp(x) == 0


def welch_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(t, df, two-sided p) of Welch's test of ``a`` against ``b``; NaNs when n < 2 on a side.

    Computed directly (the same formulas as ``scipy.stats.ttest_ind(equal_var=False)``), so that a
    side of identical repeats has variance exactly 0: the test then rests on the other side's spread.
    """
    a, b = _clean(a), _clean(b)
    if a.size < 2 or b.size < 2:
        return math.nan, math.nan, math.nan
    va, vb = sample_variance(a), sample_variance(b)
    if va == 0.0 and vb == 0.0:
        if a.mean() == b.mean():
            return 0.0, math.nan, 1.0
        sign = 1.0 if a.mean() > b.mean() else -1.0
        return sign * math.inf, math.nan, 0.0
    sa, sb = va / a.size, vb / b.size
    t = float(a.mean() - b.mean()) / math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa ** 2 / (a.size - 1) + sb ** 2 / (b.size - 1))
    return t, float(df), float(2.0 * stats.t.sf(abs(t), df))


def mean_difference_ci(a: Sequence[float], b: Sequence[float],
                       confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean(a) − mean(b), low, high): the Welch–Satterthwaite ``confidence`` interval.

    The interval is NaN when n < 2 on a side; it is the point when both samples are constant.
    """
    a, b = _clean(a), _clean(b)
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan, math.nan
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return diff, math.nan, math.nan
    sa, sb = sample_variance(a) / a.size, sample_variance(b) / b.size
    se = math.sqrt(sa + sb)
    if se == 0.0:
        return diff, diff, diff
    df = (sa + sb) ** 2 / (sa ** 2 / (a.size - 1) + sb ** 2 / (b.size - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return diff, diff - half, diff + half


def hedges_g(a: Sequence[float], b: Sequence[float],
             confidence: float = 0.95) -> tuple[float, float, float]:
    """(g, low, high): Hedges' g of a − b and its normal-approximation ``confidence`` interval.

    ``g = J · (mean_a − mean_b) / s_pooled`` with ``J = 1 − 3 / (4 (nA + nB) − 9)``; NaN when
    n < 2 on a side or the pooled standard deviation is 0.
    """
    a, b = _clean(a), _clean(b)
    na, nb = a.size, b.size
    if na < 2 or nb < 2:
        return math.nan, math.nan, math.nan
    pooled = math.sqrt(((na - 1) * sample_variance(a) + (nb - 1) * sample_variance(b)) / (na + nb - 2))
    if pooled == 0.0:
        return math.nan, math.nan, math.nan
    g = (1.0 - 3.0 / (4.0 * (na + nb) - 9.0)) * float(a.mean() - b.mean()) / pooled
    se = math.sqrt((na + nb) / (na * nb) + g * g / (2.0 * (na + nb)))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return g, g - z * se, g + z * se


def prob_outperform(a: Sequence[float], b: Sequence[float], *, higher: bool = True) -> float:
    """P(a new repeat of A beats one of B): the share of pairs (a_i, b_j) with A better, ties ½.

    NaN when a side has no value. ``higher`` says whether larger values are better.
    """
    a, b = _clean(a), _clean(b)
    if a.size == 0 or b.size == 0:
        return math.nan
    diff = a[:, None] - b[None, :]
    if not higher:
        diff = -diff
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def compare_pairs(values: Mapping[str, Sequence[float]], *, higher: bool = True,
                  alpha: float = ALPHA) -> pd.DataFrame:
    """Every pair (A, B) of ``values`` (method → repeat values), in the mapping's order.

    Columns ``PAIRWISE_COLUMNS`` minus dataset/embedding/metric; Holm's correction runs over the
    tested pairs of this call (one family).
    """
    rows = []
    for ma, mb in combinations(list(values), 2):
        a, b = _clean(values[ma]), _clean(values[mb])
        t, df, p = welch_test(a, b)
        diff, lo, hi = mean_difference_ci(a, b)
        g, glo, ghi = hedges_g(a, b)
        rows.append({"method_a": ma, "method_b": mb, "n_a": int(a.size), "n_b": int(b.size),
                     "mean_a": float(a.mean()) if a.size else math.nan,
                     "mean_b": float(b.mean()) if b.size else math.nan,
                     "difference": diff, "difference_low": lo, "difference_high": hi,
                     "hedges_g": g, "hedges_g_low": glo, "hedges_g_high": ghi,
                     "t": t, "df": df, "p_value": p,
                     "p_a_beats_b": prob_outperform(a, b, higher=higher)})
    columns = [c for c in PAIRWISE_COLUMNS if c not in ("dataset", "embedding", "metric")]
    out = pd.DataFrame(rows, columns=columns)
    out["p_holm"] = holm(out["p_value"].to_numpy(dtype=float)) if len(out) else []
    out["significant"] = [bool(p < alpha) if not math.isnan(p) else pd.NA for p in out["p_holm"]]
    return out


def oriented(pairs: pd.DataFrame, method: str) -> pd.DataFrame:
    """The rows of ``pairs`` that involve ``method``, turned so that ``method`` is A.

    Differences, their intervals and g change sign (the interval's ends swap), P(A beats B)
    becomes its complement; p-values and n are symmetric.

    Every new column is computed from an untouched copy of the rows: swapping two columns in
    place (``rows.loc[flip, [a, b]] = rows.loc[flip, [b, a]].to_numpy()``) reads from a view of
    what it writes under pandas' copy-on-write, which turned the report page's intervals into a
    single repeated number.
    """
    src = pairs[(pairs["method_a"] == method) | (pairs["method_b"] == method)].copy(deep=True)
    flip = (src["method_b"] == method).to_numpy(dtype=bool)
    out = src.copy(deep=True)
    swaps = [("method_a", "method_b"), ("n_a", "n_b"), ("mean_a", "mean_b"), ("sd_a", "sd_b")]
    for a, b in swaps:
        if a not in src:
            continue
        va, vb = src[a].to_numpy(copy=True), src[b].to_numpy(copy=True)
        out[a] = np.where(flip, vb, va)
        out[b] = np.where(flip, va, vb)
    negate = {"difference": "difference", "t": "t", "hedges_g": "hedges_g",
              "difference_low": "difference_high", "difference_high": "difference_low",
              "hedges_g_low": "hedges_g_high", "hedges_g_high": "hedges_g_low"}
    for col, source in negate.items():
        if col not in src:
            continue
        own = src[col].to_numpy(dtype=float, copy=True)
        other = src[source].to_numpy(dtype=float, copy=True)
        out[col] = np.where(flip, -other, own)
    if "p_a_beats_b" in src:
        p = src["p_a_beats_b"].to_numpy(dtype=float, copy=True)
        out["p_a_beats_b"] = np.where(flip, 1.0 - p, p)
    return out


def significance_group(values: Mapping[str, Sequence[float]], *, higher: bool = True,
                       alpha: float = ALPHA) -> tuple[str | None, set[str]]:
    """(reference, group): the best tested method and the tested methods not significantly worse.

    Only methods with at least two values are tested; ``reference`` is None when there are none.
    """
    tested = {m: _clean(v) for m, v in values.items() if _clean(v).size >= 2}
    if not tested:
        return None, set()
    sign = 1.0 if higher else -1.0
    reference = max(tested, key=lambda m: sign * float(tested[m].mean()))
    pairs = compare_pairs(tested, higher=higher, alpha=alpha)
    group = {reference}
    for row in pairs.itertuples(index=False):
        if reference in (row.method_a, row.method_b) and not (row.p_holm < alpha):
            group.add(row.method_b if row.method_a == reference else row.method_a)
    return reference, group


def pairwise_comparisons(agg: pd.DataFrame, *, alpha: float = ALPHA) -> pd.DataFrame:
    """All pairs of methods per (dataset, embedding, metric) of an aggregate frame.

    ``agg`` is :func:`benchmark.reporting.aggregate.aggregate`'s output (its ``values`` column
    holds the repeats, ``higher_is_better`` the direction the run's manifest gives). Returns
    ``PAIRWISE_COLUMNS``, one Holm family per (dataset, embedding, metric).
    """
    parts = []
    for (dataset, emb, metric), grp in agg.groupby(["dataset", "embedding", "metric"],
                                                   sort=False):
        if metric == DIVERGED_METRIC:  # a count of failed folds, not a score to compare
            continue
        values = {str(r.method): tuple(r.values) for r in grp.itertuples(index=False)}
        pairs = compare_pairs(values, higher=bool(grp["higher_is_better"].iloc[0]), alpha=alpha)
        if pairs.empty:
            continue
        pairs.insert(0, "metric", metric)
        pairs.insert(0, "embedding", emb)
        pairs.insert(0, "dataset", dataset)
        parts.append(pairs)
    if not parts:
        return pd.DataFrame(columns=list(PAIRWISE_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(PAIRWISE_COLUMNS)]
