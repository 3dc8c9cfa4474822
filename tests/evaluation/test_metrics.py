"""compute_metrics against brute-force loops written from the protocol's definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.errors import BenchmarkError
from benchmark.evaluation import compute_metrics
from benchmark.evaluation import knn
from benchmark.evaluation.metrics import l2_normalize, nearest_neighbors


def brute_force(q, ql, ref=None, rl=None, ks=(1,), only=None):
    """Loop over queries (those of ``only`` when given, each still ranked against every reference sample): rank every
    other reference sample by cosine similarity (stable order)."""
    self_mode = ref is None
    if self_mode:
        ref, rl = q, ql
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    rn = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    p1, rp, mapr, rec = [], [], [], {k: [] for k in ks}
    for i in range(len(q)):
        if only is not None and i not in only:
            continue
        sims = rn @ qn[i]
        order = [j for j in np.argsort(-sims, kind="stable") if not (self_mode and j == i)]
        labels = [rl[j] for j in order]
        R = sum(1 for j in range(len(ref)) if rl[j] == ql[i] and not (self_mode and j == i))
        if R == 0:
            continue
        rel = [1 if lab == ql[i] else 0 for lab in labels]
        p1.append(rel[0])
        rp.append(sum(rel[:R]) / R)
        ap = 0.0
        hits = 0
        for pos in range(R):
            if rel[pos]:
                hits += 1
                ap += hits / (pos + 1)
        mapr.append(ap / R)
        for k in ks:
            rec[k].append(1 if any(rel[:k]) else 0)
    out = {"precision_at_1": np.mean(p1), "r_precision": np.mean(rp), "map_at_r": np.mean(mapr)}
    for k in ks:
        out[f"recall_at_{k}"] = np.mean(rec[k])
    out["num_queries"] = len(p1)
    return out


def make_data(seed, n_classes=12, dim=6, lone=3, dup=True):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, size=n_classes)
    labels = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)] +
                            [np.array([100 + i]) for i in range(lone)])  # lone classes
    centers = rng.normal(size=(labels.max() + 1, dim))
    emb = centers[labels] + 0.9 * rng.normal(size=(len(labels), dim))
    if dup:  # exact ties: duplicated embeddings of the same class
        for c in range(0, n_classes, 3):
            members = np.flatnonzero(labels == c)
            emb[members[1]] = emb[members[0]]
    perm = rng.permutation(len(labels))
    return emb[perm].astype(np.float32), labels[perm]


@pytest.mark.parametrize("seed", range(5))
def test_self_retrieval_matches_brute_force(seed):
    emb, labels = make_data(seed)
    got = compute_metrics(emb, labels, recall_at=(1, 2, 4))
    want = brute_force(emb, labels, ks=(1, 2, 4))
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    assert got["precision_at_1"] == pytest.approx(got["recall_at_1"])


@pytest.mark.parametrize("seed", range(3))
def test_query_gallery_matches_brute_force(seed):
    q, ql = make_data(seed, dup=False)
    g, gl = make_data(seed + 10, dup=False)
    got = compute_metrics(q, ql, g, gl, recall_at=(1, 5, 10))
    want = brute_force(q, ql, g, gl, ks=(1, 5, 10))
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("seed, query_gallery", [(0, False), (1, False), (2, True)])
def test_per_category_metrics_match_brute_force(seed, query_gallery):
    """A category's P@1 and MAP@R: its queries' values, each query ranked against the whole reference set."""
    q, ql = make_data(seed, dup=False)
    ref, rl = make_data(seed + 10, dup=False) if query_gallery else (None, None)
    categories = np.array(["shoes", "bags", "hats"], dtype=object)[np.arange(len(q)) % 3]
    got = compute_metrics(q, ql, ref, rl, recall_at=(1,), query_categories=categories)
    for category in ("shoes", "bags", "hats"):
        want = brute_force(q, ql, ref, rl, only=set(np.flatnonzero(categories == category)))
        assert got[f"precision_at_1@{category}"] == pytest.approx(want["precision_at_1"], abs=1e-9)
        assert got[f"map_at_r@{category}"] == pytest.approx(want["map_at_r"], abs=1e-9)
    assert got["map_at_r"] == pytest.approx(brute_force(q, ql, ref, rl)["map_at_r"], abs=1e-9)  # unchanged
    assert not any("@" in k and k.split("@")[0] not in ("precision_at_1", "map_at_r") for k in got)
    with pytest.raises(BenchmarkError, match="query_categories has 2 values for"):
        compute_metrics(q, ql, query_categories=["a", "b"])


def test_perfect_and_known_values():
    # two tight clusters: everything perfect
    emb = np.array([[1, 0], [0.99, 0.01], [0.98, 0.02], [0, 1], [0.01, 0.99]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 1])
    m = compute_metrics(torch.from_numpy(emb), torch.from_numpy(labels))
    assert m["precision_at_1"] == 1.0 and m["map_at_r"] == 1.0 and m["r_precision"] == 1.0
    # a hand-computed case: query 0 (class 0) has R=2; ranking of the others: [B(1), A(0), A(0)]
    emb = np.array([[1.0, 0.0], [0.6, 0.8], [0.5, 0.866], [0.95, 0.31]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1])
    m = compute_metrics(emb[:1], labels[:1], emb[1:], labels[1:])
    # neighbours of q0 by cosine: idx3 (0.95, class 1), idx1 (0.6), idx2 (0.5): rel = [0, 1, 1], R = 2
    assert m["precision_at_1"] == 0.0
    assert m["r_precision"] == pytest.approx(0.5)
    assert m["map_at_r"] == pytest.approx((0 + 1 / 2) / 2)


@pytest.mark.parametrize("backend", knn.BACKENDS)
@pytest.mark.parametrize("chunk", [knn.QUERY_CHUNK, 2])
def test_self_is_excluded_even_with_duplicates(monkeypatch, chunk, backend):
    """Exact duplicates tie with the query itself: they must be its neighbours, the query never.

    Also with queries searched 2 at a time, so that a chunk's offset enters the self test.
    """
    monkeypatch.setattr(knn, "QUERY_CHUNK", chunk)
    monkeypatch.setattr(knn, "BLOCK_BYTES", 1)
    monkeypatch.setenv(knn.ENV, backend)
    x = l2_normalize(np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0.6, 0.8]], dtype=np.float32))
    duplicates = {0: {1, 2}, 1: {0, 2}, 2: {0, 1}, 3: {4}, 4: {3}}
    idx = nearest_neighbors(x, x, 2, exclude_self=True)
    for i, row in enumerate(idx):
        assert i not in row, (i, row)
        if i in duplicates:
            assert set(row[:len(duplicates[i])]) == duplicates[i], (i, row)
    # each sample's only duplicate has the other label; its own class sits at similarity 0: a query
    # counted as its own neighbour would score P@1 (ties put it first or second), the right answer is 0
    emb = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    got = compute_metrics(emb, np.array([0, 1, 0, 1]))
    assert got["num_queries"] == 4
    assert got["precision_at_1"] == 0.0 and got["map_at_r"] == 0.0


def test_bad_input_raises():
    with pytest.raises(BenchmarkError, match="labels"):
        compute_metrics(np.zeros((3, 2)) + 1, np.array([0, 1]))
    with pytest.raises(BenchmarkError, match="NaN"):
        compute_metrics(np.full((3, 2), np.nan), np.array([0, 0, 1]))
    with pytest.raises(BenchmarkError, match="singleton"):
        compute_metrics(np.eye(3, dtype=np.float32), np.array([0, 1, 2]))
