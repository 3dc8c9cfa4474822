"""Statistical power of the repeats: what difference a pair could detect, and how many repeats
a given difference would need.

Both treat the repeats' sample standard deviations as the true ones and use the power of the
two-sided Welch t-test at level α (per pair, before any multiple-testing correction): with
``se = sqrt(sA²/nA + sB²/nB)`` and Welch–Satterthwaite degrees of freedom ``df``, a true
difference δ is detected with probability

    P(|T| > t_{1-α/2, df}),  T ~ noncentral t(df, δ / se)    (``scipy.stats.nct``).

Far in the tail, where scipy's noncentral t returns NaN, its normal limit is used.

* :func:`min_detectable_difference`: the δ with power 80% at the pair's own n.
* :func:`repeats_needed`: the smallest equal number of repeats per method (at least 2) whose
  power for a given δ reaches 80%.

A pair without spread (both standard deviations 0) or with fewer than two repeats on a side has
no answer (NaN, shown "n/a").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

try:  # the ufunc stats.nct.sf evaluates (scipy >= 1.12); older scipy: through stats.nct.sf itself
    from scipy.special._ufuncs import _nct_sf as _NCT_SF
except ImportError:  # pragma: no cover
    _NCT_SF = None

from benchmark.reporting.significance import ALPHA, sample_variance

#: Power the minimal detectable difference and the needed repeats are computed for.
POWER = 0.8
#: Largest number of repeats :func:`repeats_needed` looks at; beyond it the answer is ``inf``.
MAX_REPEATS = 10_000
#: Columns of the frame returned by :func:`pairwise_power` (differences are fractions).
POWER_COLUMNS = ("dataset", "embedding", "metric", "method_a", "method_b", "sd_a", "sd_b",
                 "min_detectable_difference", "target_difference", "repeats_needed")


def _t_ppf(q: float, df: float) -> float:
    return float(special.stdtrit(df, q))  # what stats.t.ppf computes, without its per-call argument checks


def _nct_cdf(x: float, df: float, nc: float) -> float:
    return float(special.nctdtr(df, nc, x))  # stats.nct.cdf's own function


def _nct_sf(x: float, df: float, nc: float) -> float:
    if _NCT_SF is None:
        return float(stats.nct.sf(x, df, nc))
    return min(1.0, max(0.0, float(_NCT_SF(x, df, nc))))  # stats.nct.sf's own function and clip


def welch_power(difference: float, var_a: float, n_a: int, var_b: float, n_b: int, *,
                alpha: float = ALPHA) -> float:
    """Power of the two-sided Welch test for a true ``difference`` (variances, not sds).

    The distribution functions are scipy's ufuncs that ``stats.t.ppf``, ``stats.nct.sf`` and ``.cdf``
    call, called directly: the same values, without the ~0.1 ms of argument checks per call that
    made the report's power analysis most of its time (tens of thousands of calls on the quick table).
    """
    sa, sb = var_a / n_a, var_b / n_b
    se = math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa ** 2 / (n_a - 1) + sb ** 2 / (n_b - 1))
    crit = _t_ppf(1.0 - alpha / 2.0, df)
    nc = abs(difference) / se
    power = _nct_sf(crit, df, nc) + _nct_cdf(-crit, df, nc)
    if math.isnan(power):  # scipy's nct loses its way far in the tail: the normal limit
        power = float(special.ndtr(nc - crit) + special.ndtr(-crit - nc))
    return min(1.0, max(0.0, power))


def _sample(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[~np.isnan(x)]


def min_detectable_difference(a: Sequence[float], b: Sequence[float], *, alpha: float = ALPHA,
                              power: float = POWER) -> float:
    """The true difference the Welch test on these repeats detects with probability ``power``."""
    a, b = _sample(a), _sample(b)
    if a.size < 2 or b.size < 2:
        return math.nan
    va, vb = sample_variance(a), sample_variance(b)  # exactly 0 for identical repeats
    if va == 0.0 and vb == 0.0:
        return math.nan
    se = math.sqrt(va / a.size + vb / b.size)

    def gap(delta: float) -> float:
        return welch_power(delta, va, a.size, vb, b.size, alpha=alpha) - power

    hi = se
    while gap(hi) < 0:
        hi *= 2.0
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-12 * max(se, 1e-300)))


def repeats_needed(a: Sequence[float], b: Sequence[float], difference: float, *,
                   alpha: float = ALPHA, power: float = POWER,
                   max_repeats: int = MAX_REPEATS) -> float:
    """Smallest n ≥ 2 repeats per method whose Welch test detects ``difference`` with ``power``.

    The spread is each side's sample variance; ``inf`` beyond ``max_repeats``; NaN without spread
    or with fewer than two repeats on a side, or for a zero ``difference``.
    """
    a, b = _sample(a), _sample(b)
    if a.size < 2 or b.size < 2 or difference == 0:
        return math.nan
    va, vb = sample_variance(a), sample_variance(b)  # exactly 0 for identical repeats
    if va == 0.0 and vb == 0.0:
        return math.nan

    def enough(n: int) -> bool:
        return welch_power(difference, va, n, vb, n, alpha=alpha) >= power

    if not enough(max_repeats):
        return math.inf
    lo, hi = 2, max_repeats  # power grows with n: bisect for the first n that is enough
    if enough(lo):
        return float(lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid
    return float(hi)


def pairwise_power(agg: pd.DataFrame, *, difference: float = 0.01, alpha: float = ALPHA,
                   power: float = POWER) -> pd.DataFrame:
    """Per (dataset, embedding, metric) and pair of methods of an aggregate frame: the repeats'
    standard deviations, the minimal detectable difference and the repeats ``difference`` needs.

    Pairs come in the same order as :func:`benchmark.reporting.significance.pairwise_comparisons`.
    """
    rows = []
    for (dataset, emb, metric), grp in agg.groupby(["dataset", "embedding", "metric"],
                                                   sort=False):
        values = [(str(r.method), _sample(r.values)) for r in grp.itertuples(index=False)]
        for i, (ma, a) in enumerate(values):
            for mb, b in values[i + 1:]:
                rows.append({
                    "dataset": dataset, "embedding": emb, "metric": metric,
                    "method_a": ma, "method_b": mb,
                    "sd_a": float(a.std(ddof=1)) if a.size >= 2 else math.nan,
                    "sd_b": float(b.std(ddof=1)) if b.size >= 2 else math.nan,
                    "min_detectable_difference": min_detectable_difference(
                        a, b, alpha=alpha, power=power),
                    "target_difference": difference,
                    "repeats_needed": repeats_needed(a, b, difference, alpha=alpha,
                                                     power=power),
                })
    return pd.DataFrame(rows, columns=list(POWER_COLUMNS))
