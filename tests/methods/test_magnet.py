"""Magnet loss: the formula written out by hand, the k-means refresh, and the neighbourhood sampler."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark.errors import ConfigError
from benchmark.methods import MethodContext, get_method
from benchmark.methods.library.magnet import Clusters, MagnetBatches, cluster_training_set, kmeans

CTX = MethodContext(num_classes=3, embedding_dim=2)

# 6 samples, 3 clusters: clusters 0 and 1 are both class 0, cluster 2 is class 1
EMB = [[0.0, 0.0], [1.0, 0.5], [2.0, 1.0], [2.5, 0.0], [0.5, 1.0], [1.5, 0.8]]
LABELS = [0, 0, 0, 0, 1, 1]
CLUSTER = [0, 0, 1, 1, 2, 2]


def sq(a, b):
    return sum((p - q) ** 2 for p, q in zip(a, b))


def hand_magnet(emb, labels, cluster, alpha, divisor=None):
    """Per-sample magnet loss by loops; σ² = Σ‖r − μ(r)‖² / (n − 1) unless ``divisor`` is given."""
    n = len(emb)
    ids = sorted(set(cluster))
    mu = {c: [sum(emb[b][d] for b in range(n) if cluster[b] == c) / cluster.count(c) for d in range(len(emb[0]))]
          for c in ids}
    cls = {c: labels[cluster.index(c)] for c in ids}
    var = sum(sq(emb[b], mu[cluster[b]]) for b in range(n)) / (divisor if divisor else n - 1)
    out = []
    for b in range(n):
        others = [c for c in ids if cls[c] != labels[b]]
        value = (sq(emb[b], mu[cluster[b]]) / (2 * var) + alpha
                 + math.log(sum(math.exp(-sq(emb[b], mu[c]) / (2 * var)) for c in others)))
        out.append(max(value, 0.0))
    return out


def make_method(overrides=None, clusters=None):
    method = get_method("magnet").create(CTX, overrides)
    if clusters is not None:
        method.set_clusters(clusters)
    return method


def hand_clusters():
    members = [np.flatnonzero(np.asarray(CLUSTER) == c) for c in range(3)]
    return Clusters(labels=np.array([0, 0, 1]), members=members, assignment=np.asarray(CLUSTER))


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_loss_matches_the_formula_with_the_batch_clusters(alpha):
    method = make_method({"alpha": alpha}, hand_clusters())
    emb = torch.tensor(EMB, dtype=torch.float64)
    indices = torch.arange(6)
    value = method(emb, torch.tensor(LABELS), indices).item()
    expected = hand_magnet(EMB, LABELS, CLUSTER, alpha)
    assert value == pytest.approx(sum(expected) / 6, abs=1e-9)
    assert min(expected) == 0 < max(expected)  # the hinge is active for some samples only
    # σ² with the (M·D − 1) divisor: the plain mean (divide by 6) or a σ² squared twice would differ
    assert abs(sum(hand_magnet(EMB, LABELS, CLUSTER, alpha, divisor=6)) / 6 - value) > 1e-3
    # the batch's clusters matter: one cluster per class gives another value
    class_level = method(emb, torch.tensor(LABELS)).item()
    assert class_level == pytest.approx(sum(hand_magnet(EMB, LABELS, [0, 0, 0, 0, 2, 2], alpha)) / 6, abs=1e-9)
    assert abs(class_level - value) > 1e-3


def test_sigma_is_not_squared_twice():
    # scaling the embeddings leaves the loss unchanged only when σ² enters once (‖·‖²/σ² is scale-free)
    method = make_method(None, hand_clusters())
    emb = torch.tensor(EMB, dtype=torch.float64)
    a = method(emb, torch.tensor(LABELS), torch.arange(6)).item()
    b = method(7.0 * emb, torch.tensor(LABELS), torch.arange(6)).item()
    assert a == pytest.approx(b, abs=1e-9)


def test_gradient_flows_and_losses_are_recorded_per_cluster():
    method = make_method({"loss_momentum": 0.5}, hand_clusters())
    emb = torch.tensor(EMB, dtype=torch.float64, requires_grad=True)
    loss = method(emb, torch.tensor(LABELS), torch.arange(6))
    loss.backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0 and torch.isfinite(emb.grad).all()
    per = hand_magnet(EMB, LABELS, CLUSTER, 1.0)
    first = [(per[0] + per[1]) / 2, (per[2] + per[3]) / 2, (per[4] + per[5]) / 2]
    assert method.cluster_loss.tolist() == pytest.approx(first)
    # a second batch (cluster 2 only, through its indices) moves cluster 2's average halfway
    method(torch.tensor(EMB[4:] + EMB[:2], dtype=torch.float64), torch.tensor([1, 1, 0, 0]),
           torch.tensor([4, 5, 0, 1]))
    assert method.cluster_loss[1] == pytest.approx(first[1])
    assert method.cluster_loss[2] != pytest.approx(first[2])


def _blobs(seed=0):
    """3 classes x 10 samples in 2-D; each class is two tight blobs of 5 (centres listed)."""
    rng = np.random.default_rng(seed)
    centres = {0: [(0, 0), (10, 0)], 1: [(0, 10), (10, 10)], 2: [(20, 0), (20, 10)]}
    emb, labels, blob = [], [], []
    for c, cs in centres.items():
        for j, centre in enumerate(cs):
            emb.append(np.asarray(centre) + 0.1 * rng.standard_normal((5, 2)))
            labels += [c] * 5
            blob += [2 * c + j] * 5
    return np.concatenate(emb), np.asarray(labels), np.asarray(blob)


def test_kmeans_refresh_assigns_every_training_sample():
    emb, labels, blob = _blobs()
    method = make_method({"clusters_per_class": 2, "refresh_epochs": 2})
    calls = []

    def embed():
        calls.append(1)
        return emb

    state = SimpleNamespace(embed_training_set=embed, train_set=SimpleNamespace(labels=labels), seed=3)
    method.batch_sampler(labels, batch_size=4, m_per_class=2, seed=0)
    method.on_epoch_start(1, state)
    clusters = method.clusters
    assert len(clusters) == 6 and np.all(clusters.assignment >= 0)
    assert sorted(np.concatenate(clusters.members).tolist()) == list(range(30))
    for c, members in enumerate(clusters.members):
        assert np.all(clusters.assignment[members] == c)
        assert np.all(labels[members] == clusters.labels[c])  # a cluster never mixes classes
        assert len(set(blob[members])) == 1  # the blobs are found
    assert np.allclose(clusters.centres, [emb[m].mean(0) for m in clusters.members])
    method.on_epoch_start(2, state)  # refresh every 2 epochs: not at epoch 2
    method.on_epoch_start(3, state)
    assert len(calls) == 2
    # deterministic given the seed; a class smaller than K gets one cluster per sample
    again = cluster_training_set(emb, labels, 2, seed=3 * 1000 + 1)
    assert all(np.array_equal(a, b) for a, b in zip(again.members, clusters.members))
    small = cluster_training_set(emb[:2], [0, 0], 3, seed=0)
    assert len(small) == 2 and sorted(small.assignment.tolist()) == [0, 1]


def test_kmeans_keeps_every_cluster_non_empty_with_duplicates():
    x = np.zeros((4, 2))
    x[3] = 1.0
    centres, assign = kmeans(x, 3, np.random.default_rng(0))
    assert sorted(set(assign.tolist())) == [0, 1, 2] and centres.shape == (3, 2)


def test_sampler_takes_the_seed_and_its_nearest_clusters_of_other_classes():
    emb, labels, _ = _blobs()
    method = make_method({"clusters_per_class": 2})
    batches = method.batch_sampler(labels, batch_size=6, m_per_class=3, seed=0)  # M = 2, D = 3
    method.refresh_clusters(emb, labels, seed=0)
    clusters = method.clusters
    centres = clusters.centres
    for _ in range(30):
        batch = next(batches)
        seed_cluster, *neighbours = batches.last_clusters
        assert len(batch) == 6 and len(neighbours) == 1
        assert [int(clusters.assignment[i]) for i in batch] == [seed_cluster] * 3 + neighbours * 3
        # the neighbour is the nearest centre among the clusters of other classes
        others = [c for c in range(len(clusters)) if clusters.labels[c] != clusters.labels[seed_cluster]]
        nearest = min(others, key=lambda c: ((centres[c] - centres[seed_cluster]) ** 2).sum())
        assert neighbours == [nearest]

    # M = 3 clusters of 3 distinct classes: the seed, then the nearest cluster of each new class
    batches = method.batch_sampler(labels, batch_size=9, m_per_class=3, seed=1)
    method.refresh_clusters(emb, labels, seed=0)
    clusters = method.clusters
    for _ in range(30):
        batch = next(batches)
        chosen = batches.last_clusters
        assert len(batch) == 9 and len({clusters.labels[c] for c in chosen}) == 3
        d = ((clusters.centres - clusters.centres[chosen[0]]) ** 2).sum(1)
        expected, used = [], {clusters.labels[chosen[0]]}
        for c in np.argsort(d, kind="stable"):
            if clusters.labels[c] not in used:
                expected.append(int(c))
                used.add(clusters.labels[c])
        assert chosen[1:] == expected[:2]
        assert all(len({labels[i] for i in batch[3 * k:3 * k + 3]}) == 1 for k in range(3))


def test_sampler_works_before_the_first_refresh_and_follows_the_method():
    emb, labels, _ = _blobs()
    method = make_method()
    batches = method.batch_sampler(labels, batch_size=6, m_per_class=2, seed=0)  # before any k-means
    assert isinstance(batches, MagnetBatches) and method.clusters is None
    batch = next(batches)
    assert len(batch) == 6 and len({labels[i] for i in batch}) == 3  # one cluster per class, 3 classes
    assert len(method.clusters) == 3
    method.refresh_clusters(emb, labels, seed=0)  # the same iterator now uses the k-means clusters
    next(batches)
    assert len(method.clusters) == 6 and max(batches.last_clusters) < 6
    # the same seed gives the same batches
    a = make_method().batch_sampler(labels, batch_size=6, m_per_class=2, seed=5)
    b = make_method().batch_sampler(labels, batch_size=6, m_per_class=2, seed=5)
    assert [next(a) for _ in range(5)] == [next(b) for _ in range(5)]
    with pytest.raises(ConfigError):
        make_method().batch_sampler(labels, batch_size=8, m_per_class=2, seed=0)  # 4 classes needed, 3 exist


def test_seed_cluster_is_drawn_proportionally_to_its_recent_loss():
    emb, labels, _ = _blobs()
    method = make_method()
    batches = method.batch_sampler(labels, batch_size=4, m_per_class=2, seed=0)
    method.refresh_clusters(emb, labels, seed=0)
    assert np.allclose(method.seed_probabilities(), 1 / 6)  # uniform while no loss is known
    method.cluster_loss[:] = [8.0, 1.0, 1.0, 1.0, 1.0, np.nan]  # the unseen one counts with the mean, 2.4
    probs = method.seed_probabilities()
    assert probs[0] == pytest.approx(8 / 14.4) and probs[5] == pytest.approx(2.4 / 14.4)
    seeds = []
    for _ in range(600):
        next(batches)
        seeds.append(batches.last_clusters[0])
    counts = np.bincount(seeds, minlength=6)
    assert counts[0] > 4 * counts[1:5].max()
    assert abs(counts[0] / 600 - 8 / 14.4) < 0.06
