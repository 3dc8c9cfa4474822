"""Exact kNN: both backends return the same neighbours as a stable brute-force sort, in chunks, and
the backend choice is forced, measured or torch as documented."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.errors import ConfigError
from benchmark.evaluation import knn
from benchmark.evaluation.metrics import compute_metrics, l2_normalize


def brute(query, reference, k, exclude_self):
    """Stable sort of the exact (float64) similarities: ties keep the lower index first."""
    ref = reference.astype(np.float64)
    out = []
    for i, q in enumerate(query.astype(np.float64)):
        row = (ref * q).sum(axis=1)  # row by row: identical rows give identical sums (a BLAS product may not)
        order = [j for j in np.argsort(-row, kind="stable") if not (exclude_self and j == i)]
        out.append(order[:k])
    return np.array(out)


def data(n, dim=16, seed=0, duplicates=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    for i in range(duplicates):  # exact ties: copies of earlier rows
        x[n - 1 - i] = x[i]
    return np.ascontiguousarray(l2_normalize(x))


@pytest.mark.parametrize("backend", knn.BACKENDS)
@pytest.mark.parametrize("chunk", [knn.QUERY_CHUNK, 7])
def test_each_backend_equals_a_stable_brute_force_sort(monkeypatch, backend, chunk):
    monkeypatch.setattr(knn, "QUERY_CHUNK", chunk)
    x = data(300, duplicates=20)
    got = knn.nearest_neighbors(x, x, 12, exclude_self=True, backend=backend)
    assert np.array_equal(got, brute(x, x, 12, exclude_self=True))
    q, g = data(50, seed=1), data(200, seed=2, duplicates=10)
    assert np.array_equal(knn.nearest_neighbors(q, g, 9, exclude_self=False, backend=backend),
                          brute(q, g, 9, exclude_self=False))


def test_the_backends_agree_where_float32_kernels_round_differently():
    x = data(2000, dim=128, seed=3)
    a = knn.nearest_neighbors(x, x, 30, exclude_self=True, backend="torch")
    b = knn.nearest_neighbors(x, x, 30, exclude_self=True, backend="faiss")
    assert np.array_equal(a, b)


def test_a_query_never_finds_itself_among_many_duplicates():
    """More exact copies than candidates: the query itself may or may not be a candidate; never returned."""
    x = np.repeat(data(3, seed=4), 40, axis=0)  # every row has 39 exact duplicates
    for backend in knn.BACKENDS:
        idx = knn.nearest_neighbors(x, x, 5, exclude_self=True, backend=backend)
        assert not (idx == np.arange(len(x))[:, None]).any()
        assert (idx // 40 == np.arange(len(x))[:, None] // 40).all()  # all five are its duplicates


def test_metrics_are_the_same_whichever_backend(monkeypatch):
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 30, size=600)
    emb = rng.standard_normal((30, 32))[labels] + 1.5 * rng.standard_normal((600, 32))
    results = []
    for backend in knn.BACKENDS:
        monkeypatch.setenv(knn.ENV, backend)
        results.append(compute_metrics(emb, labels, recall_at=(1, 4)))
    assert results[0] == results[1]


def test_the_backend_is_forced_measured_or_torch(monkeypatch):
    monkeypatch.setenv(knn.ENV, "faiss")
    assert knn.choose_backend(10, 10, 4) == "faiss"
    monkeypatch.setenv(knn.ENV, "blas")
    with pytest.raises(ConfigError, match=knn.ENV):
        knn.choose_backend(10, 10, 4)
    monkeypatch.setenv(knn.ENV, "auto")
    assert knn.choose_backend(100, 100, 8) == "torch"  # small: not worth measuring
    calls = []
    monkeypatch.setattr(knn, "_chosen", {})
    monkeypatch.setattr(knn, "_probe", lambda device, dim: calls.append((device, dim)) or "faiss")
    big = knn.PROBE_ABOVE
    assert knn.choose_backend(big, 2, 1) == "faiss" and knn.choose_backend(big, 2, 1) == "faiss"
    assert calls == [("cpu", 1)]  # measured once per process and width


def test_the_probe_names_a_backend():
    assert knn._probe("cpu", 8) in knn.BACKENDS


def test_memory_per_chunk_is_bounded():
    for n in (10, 60_502, 1_000_000):
        assert 16 <= knn.chunk_rows(n) <= knn.QUERY_CHUNK
        if n > 100_000:
            assert knn.chunk_rows(n) * n * 4 <= knn.BLOCK_BYTES or knn.chunk_rows(n) == 16


def test_too_many_neighbours_is_refused():
    x = data(5)
    with pytest.raises(ValueError, match="k = 5"):
        knn.nearest_neighbors(x, x, 5, exclude_self=True)
