"""Power: Cohen's textbook values, the normal approximation for large n, degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from benchmark.reporting.aggregate import aggregate
from benchmark.reporting.power import (
    min_detectable_difference,
    pairwise_power,
    repeats_needed,
    welch_power,
)
from tests.reporting.helpers import MANIFEST, fake_results


def _unit_sd(n: int, shift: float = 0.0) -> np.ndarray:
    """n values with sample standard deviation exactly 1."""
    x = np.arange(n, dtype=float)
    return (x - x.mean()) / x.std(ddof=1) + shift


def test_cohen_table_values():
    # Two-sample t, alpha 0.05 two-sided, power 0.8 (Cohen 1988; G*Power): n = 10 per group
    # detects d = 1.3249; d = 1 needs 17 per group, d = 0.5 needs 64.
    a, b = _unit_sd(10), _unit_sd(10, 3.0)
    assert min_detectable_difference(a, b) == pytest.approx(1.3249, abs=5e-4)
    assert repeats_needed(a, b, 1.0) == 17
    assert repeats_needed(a, b, 0.5) == 64
    assert welch_power(1.3249, 1.0, 10, 1.0, 10) == pytest.approx(0.8, abs=1e-3)


def test_large_n_matches_normal_approximation():
    a, b = _unit_sd(2000), _unit_sd(2000)
    se = math.sqrt(2 / 2000)
    by_hand = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se  # 2.8016 se
    assert min_detectable_difference(a, b) == pytest.approx(by_hand, rel=2e-3)


def test_n2_one_repeat_no_spread_and_nan():
    # n = 2 on both sides, sds 0.1: df = 2, power 0.8 needs a large difference
    a, b = [0.5, 0.6], [0.4, 0.5]
    mdd = min_detectable_difference(a, b)
    assert welch_power(mdd, 0.005, 2, 0.005, 2) == pytest.approx(0.8, abs=1e-6)
    assert mdd > 0.3
    assert math.isnan(min_detectable_difference([0.5], b))
    assert math.isnan(min_detectable_difference([0.5, 0.5], [0.4, 0.4]))
    assert math.isnan(repeats_needed([0.5, 0.5], [0.4, 0.4], 0.01))
    assert math.isnan(min_detectable_difference([0.5, math.nan], b))
    assert repeats_needed(a, b, 1e-6, max_repeats=50) == math.inf


def test_pairwise_power_frame():
    frame = pairwise_power(aggregate(fake_results(), MANIFEST), difference=0.01)
    assert len(frame) == 6
    row = frame[(frame["embedding"] == "concatenated") & (frame["method_a"] == "triplet")
                & (frame["method_b"] == "contrastive")].iloc[0]
    assert row["sd_a"] == pytest.approx(np.std([0.60, 0.62, 0.67], ddof=1))
    assert row["repeats_needed"] >= 2
    assert frame.loc[frame["method_a"] == "pretrained", "min_detectable_difference"].isna().all()


def _power_through_distributions(difference, var_a, n_a, var_b, n_b, alpha=0.05):
    """The power formula through scipy.stats' distribution objects (what welch_power computed before it
    called their ufuncs directly)."""
    sa, sb = var_a / n_a, var_b / n_b
    se = math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa ** 2 / (n_a - 1) + sb ** 2 / (n_b - 1))
    crit = float(stats.t.ppf(1.0 - alpha / 2.0, df))
    nc = abs(difference) / se
    power = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    if math.isnan(power):
        power = float(stats.norm.sf(crit - nc) + stats.norm.cdf(-crit - nc))
    return min(1.0, max(0.0, power))


def test_welch_power_equals_scipy_stats_distributions():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        args = (10 ** rng.uniform(-5, 1), 10 ** rng.uniform(-8, 0), int(rng.integers(2, 10_000)),
                10 ** rng.uniform(-8, 0), int(rng.integers(2, 10_000)))
        assert welch_power(*args) == _power_through_distributions(*args), args
