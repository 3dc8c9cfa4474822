"""Verification metrics against brute force and hand-computed examples."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from benchmark.errors import BenchmarkError
from benchmark.evaluation.verification import (
    choose_threshold,
    pair_similarities,
    roc_auc,
    tar_key,
    threshold_at_far,
    verification_metrics,
    verification_pairs,
)


def _brute_auc(s: np.ndarray, same: np.ndarray) -> float:
    total = 0.0
    pos, neg = s[same], s[~same]
    for a in pos:
        for b in neg:
            total += 1.0 if a > b else 0.5 if a == b else 0.0
    return total / (len(pos) * len(neg))


def test_roc_auc_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        s = rng.integers(0, 6, size=n) / 5.0  # few distinct values: many ties
        same = rng.random(n) < 0.4
        same[0], same[1] = True, False
        assert roc_auc(s, same) == pytest.approx(_brute_auc(s, same), abs=1e-12)
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.9, 0.1], [True, False]) == 1.0 and roc_auc([0.1, 0.9], [True, False]) == 0.0
    with pytest.raises(BenchmarkError):
        roc_auc([0.1, 0.2], [True, True])


def _far(s: np.ndarray, same: np.ndarray, t: float) -> float:
    return float((s[~same] >= t).mean())


def _brute_threshold(s: np.ndarray, same: np.ndarray, far: float) -> float:
    """Smallest feasible candidate: FAR only changes just above each value, so -inf and nextafter(v) cover it."""
    candidates = sorted({-math.inf} | {float(np.nextafter(v, np.inf)) for v in s})
    return next(t for t in candidates if _far(s, same, t) <= far)


@pytest.mark.parametrize("far", [0.0, 0.05, 0.1, 0.2, 0.25, 1 / 3, 0.5, 0.99, 1.0])
def test_threshold_at_far_matches_brute_force_scan(far):
    rng = np.random.default_rng(1)
    for _ in range(15):
        n = int(rng.integers(2, 30))
        s = rng.integers(-5, 6, size=n) / 5.0  # ties, including ties among negatives at the cut
        same = rng.random(n) < 0.3
        same[0] = False
        t = threshold_at_far(s, same, far)
        assert t == _brute_threshold(s, same, far)
        assert _far(s, same, t) <= far
        if t > -math.inf:  # the next float below is infeasible: t is the smallest feasible threshold
            assert _far(s, same, float(np.nextafter(t, -np.inf))) > far


def test_threshold_ties_and_few_negatives():
    s = np.array([0.9, 0.8, 0.8, 0.5, 0.1, 0.95])
    same = np.array([False, False, False, False, False, True])
    # far 0.2 of 5 negatives: one may be accepted; the 2nd largest is 0.8, tied with the 3rd: both rejected
    t = threshold_at_far(s, same, 0.2)
    assert 0.8 < t < 0.9 and _far(s, same, t) == 0.2
    t = threshold_at_far(s, same, 0.4)  # two may be accepted, but 0.8 is tied with a third: only 0.9 accepted
    assert 0.8 < t < 0.9 and _far(s, same, t) == 0.2
    t = threshold_at_far(s, same, 0.6)  # three: 0.9, 0.8, 0.8 accepted
    assert 0.5 < t <= 0.8 and _far(s, same, t) == pytest.approx(0.6)
    # fewer than 1/far negatives: just above the largest negative, FAR 0
    t = threshold_at_far(s, same, 1e-3)
    assert t == np.nextafter(0.9, 1.0) and _far(s, same, t) == 0.0
    assert threshold_at_far(s, same, 1.0) == -math.inf
    with pytest.raises(BenchmarkError):
        threshold_at_far([0.1], [True], 0.1)


def _brute_pairs(labels: list) -> tuple[set, set]:
    pos, neg = set(), set()
    for a, b in itertools.combinations(range(len(labels)), 2):
        (pos if labels[a] == labels[b] else neg).add((a, b))
    return pos, neg


def test_pairs_all_when_below_the_caps():
    labels = ["b", "a", "b", "c", "a", "b", "d"]
    i, j, same = verification_pairs(labels)
    pairs = list(zip(i.tolist(), j.tolist()))
    assert all(a < b for a, b in pairs) and len(set(pairs)) == len(pairs)
    pos, neg = _brute_pairs(labels)
    assert {p for p, s in zip(pairs, same) if s} == pos
    assert {p for p, s in zip(pairs, same) if not s} == neg
    assert same[:len(pos)].all() and not same[len(pos):].any()
    assert all(s == (labels[a] == labels[b]) for (a, b), s in zip(pairs, same))


def test_pairs_sampled_uniquely_and_deterministically():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 12, size=150)
    pos_all, neg_all = _brute_pairs(labels.tolist())
    i, j, same = verification_pairs(labels, max_negatives=500, max_positives=300, seed=7)
    pairs = list(zip(i.tolist(), j.tolist()))
    assert len(set(pairs)) == len(pairs) == 800 and all(a < b for a, b in pairs)
    assert same.sum() == 300
    assert {p for p, s in zip(pairs, same) if s} <= pos_all
    assert {p for p, s in zip(pairs, same) if not s} <= neg_all
    again = verification_pairs(labels, max_negatives=500, max_positives=300, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip((i, j, same), again))
    other = verification_pairs(labels, max_negatives=500, max_positives=300, seed=8)
    assert not np.array_equal(i[same == 0], other[0][other[2] == 0])
    # negatives do not depend on the positive cap (independent streams)
    more_pos = verification_pairs(labels, max_negatives=500, max_positives=400, seed=7)
    assert np.array_equal(i[~same], more_pos[0][~more_pos[2]])


def test_pairs_from_a_large_population():
    """Millions of candidate pairs (numpy's set-based sampling path); one big class for the positive cap."""
    labels = np.concatenate([np.zeros(2000, dtype=int), np.arange(1, 1001)])
    i, j, same = verification_pairs(labels, max_negatives=5000, max_positives=3000, seed=1)
    assert same.sum() == 3000 and len(same) == 8000
    keys = i * len(labels) + j
    assert len(np.unique(keys)) == len(keys) and np.all(i < j)
    assert np.array_equal(labels[i] == labels[j], same)


def test_negative_sampling_is_roughly_uniform():
    labels = np.repeat(np.arange(4), 5)  # 20 samples: 40 positives, 150 negatives
    counts = {}
    for seed in range(300):
        i, j, same = verification_pairs(labels, max_negatives=30, seed=seed)
        for pair in zip(i[~same].tolist(), j[~same].tolist()):
            counts[pair] = counts.get(pair, 0) + 1
    assert len(counts) == 150  # every negative pair gets drawn
    values = np.array(list(counts.values()))
    assert abs(values.mean() - 60) < 1e-9 and values.min() > 30 and values.max() < 95  # expected 300 * 30 / 150


def test_pair_similarities_are_cosines_in_chunks():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(10, 3)) * rng.uniform(0.1, 10, size=(10, 1))
    x[3] = 0.0
    i, j = np.array([0, 1, 2, 3, 4, 5, 6]), np.array([1, 2, 0, 5, 4, 9, 8])
    expected = [0.0 if 3 in (a, b) else x[a] @ x[b] / np.linalg.norm(x[a]) / np.linalg.norm(x[b])
                for a, b in zip(i, j)]
    assert np.allclose(pair_similarities(x, i, j, chunk=2), expected, atol=1e-12)
    assert pair_similarities(x, [4], [4])[0] == pytest.approx(1.0)


def test_tar_and_far_by_hand():
    # 2-d vectors at angles (various norms): cosine = cos(angle difference)
    angles = np.deg2rad([0, 10, 50, 60, 120, 175])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1) * np.array([1, 2, 3, 1, 5, 1])[:, None]
    labels = [0, 0, 1, 1, 2, 2]
    # positives: (0,1) 10 deg, (2,3) 10 deg, (4,5) 55 deg
    # negatives (12): angle differences 50, 60, 120, 175, 40, 50, 110, 165, 70, 125, 60, 115
    threshold = math.cos(np.deg2rad(52))  # accepts the 10-degree positives and the negatives at 40, 50, 50
    m = verification_metrics(emb, labels, threshold=threshold, far=0.25)
    assert set(m) == {"roc_auc", "tar_at_far_2e-01", "far_at_threshold"}
    assert m["tar_at_far_2e-01"] == pytest.approx(2 / 3)
    assert m["far_at_threshold"] == pytest.approx(3 / 12)
    # AUC: the two 10-degree positives beat all 12 negatives; the 55-degree one beats the 9 negatives
    # above 55 degrees and loses to 40, 50, 50
    assert m["roc_auc"] == pytest.approx((12 + 12 + 9) / (3 * 12))
    assert verification_metrics(emb, labels, threshold=None) == {"roc_auc": m["roc_auc"]}
    assert tar_key(1e-3) == "tar_at_far_1e-03"


def test_perfect_separation():
    rng = np.random.default_rng(5)
    centers = np.eye(8)[:6] * 10.0
    labels = np.repeat(np.arange(6), 7)
    val = centers[labels] + rng.normal(scale=0.01, size=(len(labels), 8))
    test = centers[labels] + rng.normal(scale=0.01, size=(len(labels), 8))
    t = choose_threshold(val, labels, far=1e-3)
    i, j, same = verification_pairs(labels)
    assert len(same) - same.sum() < 1000  # fewer than 1/far negatives: threshold above every negative
    assert t > pair_similarities(val, i, j)[~same].max()
    m = verification_metrics(test, labels, threshold=t, far=1e-3)
    assert m == {"roc_auc": 1.0, "tar_at_far_1e-03": 1.0, "far_at_threshold": 0.0}
