"""Clustering metrics of a test embedding: NMI, AMI and the pairwise F1 of k-means with k = number of classes.

The papers that print clustering next to Recall@K (Oh Song et al. 2016; Roth et al., *Revisiting Training
Strategies and Generalization Performance in Deep Metric Learning*, ICML 2020) cluster the test embeddings
with k-means, k the number of test classes, and compare the clusters with the classes:

* ``nmi``: normalised mutual information of clusters and classes (scikit-learn's
  ``normalized_mutual_info_score``, arithmetic mean normalisation, as Revisiting-DML calls it);
* ``ami``: the same, adjusted for chance (``adjusted_mutual_info_score``; pytorch-metric-learning's
  AccuracyCalculator reports both);
* ``f1``: the pairwise F1 of Revisiting-DML's ``metrics/f1.py``: over the unordered pairs of samples,
  a pair in one cluster is *predicted* positive and a pair of one class is positive; with TP the pairs that
  share both, precision = TP / same-cluster pairs, recall = TP / same-class pairs, and F1 their harmonic
  mean, 2·TP / (same-cluster pairs + same-class pairs). (Their code names precision and recall the other
  way round; F1 is symmetric in them.)

k-means is faiss's (``faiss.Kmeans``: 20 iterations as Revisiting-DML, every sample may train, seeded)
on the L2-normalised embeddings, the space the retrieval metrics rank in; each sample goes to its nearest
centroid. The seed makes the clusters, and so the metrics, the same on every evaluation of the same
embeddings.
"""

from __future__ import annotations

import faiss
import numpy as np
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from benchmark.evaluation.metrics import as_embeddings, as_labels, l2_normalize

#: k-means iterations (Revisiting-DML's ``kmeans.niter``).
KMEANS_ITERATIONS = 20
#: The metric names :func:`clustering_metrics` returns.
CLUSTERING_METRICS = ("nmi", "ami", "f1")


def kmeans_clusters(embeddings: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """The cluster (0..k-1) of every row of ``embeddings`` (float32, N x D) after seeded k-means."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if k >= len(x):  # each sample its own cluster (faiss needs at least k points)
        return np.arange(len(x), dtype=np.int64)
    km = faiss.Kmeans(x.shape[1], int(k), niter=KMEANS_ITERATIONS, seed=int(seed) % (2**31),
                      min_points_per_centroid=1, max_points_per_centroid=10**9, verbose=False)
    km.train(x)
    return km.index.search(x, 1)[1].reshape(-1).astype(np.int64)


def _pairs(counts: np.ndarray) -> int:
    """The unordered pairs within groups of these sizes: sum of n (n - 1) / 2."""
    counts = np.asarray(counts, dtype=np.int64)
    return int((counts * (counts - 1) // 2).sum())


def pairwise_f1(clusters: np.ndarray, labels: np.ndarray) -> float:
    """Pairwise F1 of ``clusters`` against ``labels`` (see the module docstring); 0 when no pair is shared."""
    clusters = np.asarray(clusters).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    _, joint = np.unique(np.stack([clusters, labels]), axis=1, return_counts=True)
    tp = _pairs(joint)
    same_cluster = _pairs(np.unique(clusters, return_counts=True)[1])
    same_class = _pairs(np.unique(labels, return_counts=True)[1])
    if tp == 0:
        return 0.0
    return 2.0 * tp / (same_cluster + same_class)


def clustering_metrics(embeddings, labels, *, seed: int = 0) -> dict[str, float]:
    """``nmi``, ``ami`` and ``f1`` of k-means (k = number of distinct ``labels``) on ``embeddings``."""
    x = l2_normalize(as_embeddings(embeddings))
    y = as_labels(labels, len(x))
    k = len(np.unique(y))
    clusters = kmeans_clusters(x, k, seed=seed)
    return {"nmi": float(normalized_mutual_info_score(y, clusters)),
            "ami": float(adjusted_mutual_info_score(y, clusters)),
            "f1": float(pairwise_f1(clusters, y))}
