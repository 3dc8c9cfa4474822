"""Pairwise statistics against hand computations and scipy: Holm, Welch, Hedges' g, P(A beats B)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from benchmark.reporting.aggregate import aggregate
from benchmark.reporting.significance import (
    compare_pairs,
    hedges_g,
    holm,
    mean_difference_ci,
    oriented,
    pairwise_comparisons,
    prob_outperform,
    significance_group,
    welch_test,
)
from tests.reporting.helpers import MANIFEST, fake_results

A, B = [1.0, 2.0, 3.0], [4.0, 6.0]


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    out = holm([0.01, math.nan, 0.04])  # NaN is not in the family: m = 2
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    assert holm([]).size == 0


def test_welch_by_hand_and_against_scipy():
    t, df, p = welch_test(A, B)
    # means 2 and 5, variances 1 and 2: se^2 = 1/3 + 2/2 = 4/3; df = (4/3)^2 / ((1/3)^2/2 + 1) = 32/19
    assert t == pytest.approx(-3 / math.sqrt(4 / 3))
    assert df == pytest.approx(32 / 19)
    assert p == pytest.approx(2 * stats.t.sf(3 / math.sqrt(4 / 3), 32 / 19))
    ref = stats.ttest_ind(A, B, equal_var=False)
    assert (t, p) == pytest.approx((ref.statistic, ref.pvalue))


def test_welch_small_and_degenerate_samples():
    t, df, p = welch_test([0.5, 0.7], [0.4, 0.6])  # n = 2: df = 2, t = 0.1 / sqrt(0.02)
    assert t == pytest.approx(0.1 / math.sqrt(0.02)) and df == pytest.approx(2.0)
    assert p == pytest.approx(2 * stats.t.sf(0.1 / math.sqrt(0.02), 2))
    assert all(math.isnan(x) for x in welch_test([0.5], [0.4, 0.6]))  # one repeat: n/a
    assert all(math.isnan(x) for x in welch_test([0.5, math.nan], [0.4, 0.6]))  # NaN dropped
    assert welch_test([0.3, 0.3], [0.3, 0.3])[2] == 1.0  # constant ties
    assert welch_test([0.4, 0.4], [0.3, 0.3])[2] == 0.0


def test_identical_repeats_have_zero_variance_and_raise_no_library_warning():
    """Identical repeats (e.g. a false-accept rate stuck at one value): scipy's moment calculation warns of
    "catastrophic cancellation" on them; the tests here take their variance as exactly 0."""
    flat, varied = [0.26] * 4, [0.30, 0.31, 0.32, 0.31]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        t, df, p = welch_test(flat, varied)
        diff, lo, hi = mean_difference_ci(flat, varied)
        g = hedges_g(flat, [0.26] * 3)
    se = math.sqrt(np.var(varied, ddof=1) / 4)  # the constant side adds nothing
    assert t == pytest.approx((0.26 - 0.31) / se) and df == pytest.approx(3.0)
    assert p == pytest.approx(2 * stats.t.sf(abs(t), 3))
    assert (lo, hi) == pytest.approx((diff - stats.t.ppf(0.975, 3) * se, diff + stats.t.ppf(0.975, 3) * se))
    assert all(math.isnan(x) for x in g)  # no spread on either side: no standardised effect


def test_mean_difference_interval():
    diff, lo, hi = mean_difference_ci(A, B)
    half = stats.t.ppf(0.975, 32 / 19) * math.sqrt(4 / 3)
    assert (diff, lo, hi) == pytest.approx((-3.0, -3.0 - half, -3.0 + half))
    diff, lo, hi = mean_difference_ci([0.5], [0.4, 0.6])
    assert diff == pytest.approx(0.0) and math.isnan(lo) and math.isnan(hi)
    assert mean_difference_ci([0.4, 0.4], [0.3, 0.3]) == pytest.approx((0.1, 0.1, 0.1))


def test_hedges_g_by_hand():
    g, lo, hi = hedges_g(A, B)
    pooled = math.sqrt((2 * 1 + 1 * 2) / 3)
    by_hand = (1 - 3 / 11) * (-3 / pooled)
    se = math.sqrt(5 / 6 + by_hand ** 2 / 10)
    assert (g, lo, hi) == pytest.approx((by_hand, by_hand - 1.959964 * se, by_hand + 1.959964 * se),
                                        rel=1e-6)
    assert all(math.isnan(x) for x in hedges_g([0.2], A))
    assert all(math.isnan(x) for x in hedges_g([0.2, 0.2], [0.2, 0.2]))


def test_prob_outperform_by_hand_and_mann_whitney():
    a, b = [1.0, 2.0, 3.0], [2.0, 0.0]
    # A better in (1,0), (2,0), (3,2), (3,0); tie (2,2) counts 1/2: 4.5 / 6
    assert prob_outperform(a, b) == pytest.approx(0.75)
    assert prob_outperform(a, b, higher=False) == pytest.approx(0.25)
    u = stats.mannwhitneyu(a, b).statistic
    assert prob_outperform(a, b) == pytest.approx(u / 6)
    assert prob_outperform([0.5], [0.5]) == 0.5  # one repeat each, a tie
    assert math.isnan(prob_outperform([math.nan], [0.5]))


def test_compare_pairs_family_and_group():
    values = {"a": [0.80, 0.81, 0.82], "b": [0.79, 0.80, 0.83], "c": [0.50, 0.51, 0.52],
              "d": [0.90]}
    pairs = compare_pairs(values)
    assert len(pairs) == 6
    tested = pairs["p_value"].notna()
    assert int(tested.sum()) == 3  # d has one repeat: its pairs are n/a
    np.testing.assert_allclose(pairs.loc[tested, "p_holm"], holm(pairs.loc[tested, "p_value"]))
    assert pairs["significant"].isna().sum() == 3
    ac = pairs[(pairs["method_a"] == "a") & (pairs["method_b"] == "c")].iloc[0]
    assert bool(ac["significant"])
    assert ac["p_a_beats_b"] == 1.0
    reference, group = significance_group(values)
    assert reference == "a" and group == {"a", "b"}
    reference, group = significance_group({k: [-x for x in v] for k, v in values.items()},
                                          higher=False)
    assert reference == "a" and group == {"a", "b"}
    assert significance_group({"x": [0.5]}) == (None, set())


def test_pairwise_comparisons_from_aggregate():
    agg = aggregate(fake_results(), MANIFEST)
    pairs = pairwise_comparisons(agg)
    # 3 methods -> 3 pairs per (embedding, metric); 2 embeddings x 1 metric
    assert len(pairs) == 6
    row = pairs[(pairs["embedding"] == "concatenated") & (pairs["method_a"] == "triplet")
                & (pairs["method_b"] == "contrastive")].iloc[0]
    # contrastive = triplet + 0.02 in every repeat: same spread
    assert row["difference"] == pytest.approx(-0.02)
    assert row["n_a"] == 3 and row["n_b"] == 3
    pre = pairs[pairs["method_a"] == "pretrained"]
    assert pre["p_value"].isna().all()


def test_oriented_turns_pairs_around():
    values = {"a": [0.80, 0.81, 0.82], "b": [0.79, 0.80, 0.83], "c": [0.50, 0.51, 0.52]}
    pairs = compare_pairs(values)
    turned = oriented(pairs, "b").set_index("method_b")
    assert set(turned.index) == {"a", "c"} and (turned["method_a"] == "b").all()
    direct = compare_pairs({"b": values["b"], "a": values["a"]}).iloc[0]
    for col in ("difference", "difference_low", "difference_high", "hedges_g", "hedges_g_low",
                "hedges_g_high", "t", "p_value", "p_a_beats_b"):
        assert turned.loc["a", col] == pytest.approx(direct[col])
    assert turned.loc["a", "n_a"] == 3 and turned.loc["a", "mean_a"] == pytest.approx(0.8067,
                                                                                       abs=1e-4)


def test_oriented_when_the_method_is_b_in_every_pair_and_n_differ():
    """Every row flips (the case pandas' copy-on-write once broke): each turned row equals the pair
    computed directly with the method as A."""
    values = {"a": [0.70, 0.72, 0.71], "b": [0.60, 0.65, 0.61, 0.66, 0.62], "best": [0.80, 0.82, 0.79, 0.85]}
    pairs = compare_pairs(values)
    assert (pairs[pairs["method_b"] == "best"].shape[0]) == 2 and not (pairs["method_a"] == "best").any()
    turned = oriented(pairs, "best").set_index("method_b")
    for other in ("a", "b"):
        direct = compare_pairs({"best": values["best"], other: values[other]}).iloc[0]
        for col in ("n_a", "n_b", "mean_a", "mean_b", "difference", "difference_low", "difference_high",
                    "hedges_g", "hedges_g_low", "hedges_g_high", "t", "p_value", "p_a_beats_b"):
            assert turned.loc[other, col] == pytest.approx(direct[col]), (other, col)
