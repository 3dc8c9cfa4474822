"""NMI, AMI and the pairwise F1 of k-means: against scikit-learn, a brute-force pair loop and a case by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from benchmark.evaluation.clustering import clustering_metrics, kmeans_clusters, pairwise_f1
from benchmark.evaluation.metrics import l2_normalize


def brute_force_f1(clusters, labels) -> float:
    """Every unordered pair: same cluster = predicted positive, same class = positive."""
    tp = fp = fn = 0
    for i, j in itertools.combinations(range(len(labels)), 2):
        same_cluster, same_class = clusters[i] == clusters[j], labels[i] == labels[j]
        tp += same_cluster and same_class
        fp += same_cluster and not same_class
        fn += same_class and not same_cluster
    if tp == 0:
        return 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall)


def test_pairwise_f1_by_hand():
    # classes {0,1,2} {3,4} ; clusters {0,1} {2,3,4}
    # same-class pairs: (0,1) (0,2) (1,2) (3,4) = 4; same-cluster pairs: (0,1) (2,3) (2,4) (3,4) = 4
    # both: (0,1) (3,4) = 2 -> precision 2/4, recall 2/4, F1 = 0.5
    labels = np.array([7, 7, 7, 9, 9])
    clusters = np.array([1, 1, 0, 0, 0])
    assert pairwise_f1(clusters, labels) == pytest.approx(0.5)
    # perfect clustering (cluster ids need not equal class ids)
    assert pairwise_f1(np.array([5, 5, 5, 2, 2]), labels) == 1.0
    # every sample alone: no same-cluster pair, so no true positive
    assert pairwise_f1(np.arange(5), labels) == 0.0


def test_pairwise_f1_matches_a_brute_force_pair_loop():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        labels = rng.integers(0, 5, n)
        clusters = rng.integers(0, 6, n)
        assert pairwise_f1(clusters, labels) == pytest.approx(brute_force_f1(clusters, labels), abs=1e-12)


def blobs(n_classes=6, per_class=10, dim=16, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_classes, dim)) * 3
    labels = np.repeat(np.arange(n_classes), per_class)
    return (centers[labels] + spread * rng.standard_normal((len(labels), dim))).astype(np.float32), labels


def test_nmi_and_ami_are_scikit_learns_on_the_kmeans_clusters():
    x, y = blobs(spread=2.5, seed=1)  # overlapping classes: imperfect clusters
    out = clustering_metrics(x, y, seed=4)
    clusters = kmeans_clusters(l2_normalize(x), len(np.unique(y)), seed=4)
    assert out["nmi"] == pytest.approx(normalized_mutual_info_score(y, clusters), abs=1e-12)
    assert out["ami"] == pytest.approx(adjusted_mutual_info_score(y, clusters), abs=1e-12)
    assert out["f1"] == pytest.approx(brute_force_f1(clusters, y), abs=1e-12)
    assert 0.0 < out["nmi"] < 1.0 and out["f1"] < 1.0


def test_separated_classes_score_higher_and_the_seed_fixes_the_clusters():
    # (one k-means run, as Revisiting-DML: it may put two centroids in one class, so not always 1.0)
    tight = clustering_metrics(*blobs(spread=0.05), seed=0)
    loose = clustering_metrics(*blobs(spread=4.0), seed=0)
    assert all(tight[m] > loose[m] for m in ("nmi", "ami", "f1"))
    x, y = blobs(spread=2.5, seed=2)
    first = kmeans_clusters(x, 6, seed=11)
    assert np.array_equal(first, kmeans_clusters(x, 6, seed=11))
    assert len(np.unique(first)) <= 6


def test_more_clusters_than_samples_puts_each_sample_alone():
    x = np.eye(3, dtype=np.float32)
    assert list(kmeans_clusters(x, 5)) == [0, 1, 2]
