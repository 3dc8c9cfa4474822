"""Correlation of the embedding norm with per-query P@1, on data with a known nearest neighbour."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from benchmark.evaluation.uncertainty import norm_p1_correlation, per_query_precision_at_1


def _circle(angles_deg, norms):
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    return np.stack([np.cos(a), np.sin(a)], axis=1) * np.asarray(norms, dtype=np.float64)[:, None]


# three groups on the circle; within a group the nearest neighbours are unambiguous
ANGLES = [0.0, 1.0, 2.5, 40.0, 41.0, 42.5, 80.0, 81.0, 120.0]
LABELS = [0, 0, 1, 1, 1, 0, 2, 2, 3]  # class 3 is a singleton: not scored
P1 = [1, 1, 0, 1, 1, 0, 1, 1]  # 2.5° -> 1.0° (other class); 42.5° -> 41.0° (other class)
NORMS = [3.0, 2.0, 0.5, 4.0, 2.5, 1.0, 5.0, 3.5, 7.0]


def test_per_query_p1_known():
    p1, scored = per_query_precision_at_1(_circle(ANGLES, NORMS), LABELS)
    assert scored.tolist() == [True] * 8 + [False]
    assert p1[scored].tolist() == P1


def test_correlations_match_scipy():
    out = norm_p1_correlation(_circle(ANGLES, NORMS), LABELS)
    assert set(out) == {"kappa_p1_spearman", "kappa_p1_pearson"}
    kappa = np.array(NORMS[:8])
    assert math.isclose(out["kappa_p1_spearman"], stats.spearmanr(kappa, P1).statistic, abs_tol=1e-12)
    assert math.isclose(out["kappa_p1_pearson"], stats.pearsonr(kappa, P1).statistic, abs_tol=1e-12)
    assert out["kappa_p1_spearman"] > 0.5  # the wrong queries have the smallest norms
    # torch input, other norms
    norms = [1.0, 5.0, 2.0, 0.3, 0.2, 4.0, 1.5, 1.1, 9.0]
    out = norm_p1_correlation(torch.as_tensor(_circle(ANGLES, norms), dtype=torch.float32), torch.tensor(LABELS))
    kappa = np.array(norms[:8])
    assert math.isclose(out["kappa_p1_spearman"], stats.spearmanr(kappa, P1).statistic, abs_tol=1e-6)
    assert math.isclose(out["kappa_p1_pearson"], stats.pearsonr(kappa, P1).statistic, abs_tol=1e-6)
    assert out["kappa_p1_spearman"] < 0


def test_nan_when_undefined():
    equal = norm_p1_correlation(_circle(ANGLES, [2.0] * 9), LABELS)
    assert math.isnan(equal["kappa_p1_spearman"]) and math.isnan(equal["kappa_p1_pearson"])
    all_right = norm_p1_correlation(_circle([0, 1, 40, 41], [1, 2, 3, 4]), [0, 0, 1, 1])
    assert math.isnan(all_right["kappa_p1_spearman"]) and math.isnan(all_right["kappa_p1_pearson"])
    none_scored = norm_p1_correlation(_circle([0, 40], [1, 2]), [0, 1])
    assert math.isnan(none_scored["kappa_p1_pearson"])
