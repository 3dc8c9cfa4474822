"""Retrieval metrics (P@1, R-Precision, MAP@R, Recall@K) from exact nearest neighbours.

Definitions follow the reality-check protocol (``docs/explanation/protocol.md``): for a query labelled y,
R is the number of *other* reference samples labelled y; queries with R = 0 are excluded; the
query itself is never its own neighbour when the query set is the reference set. Neighbours are
exact (inner product on L2-normalised embeddings, i.e. cosine / Euclidean order; ties by lower
index), searched in chunks of queries for only k = max(R) neighbours by the faster of torch and
faiss on this machine (``benchmark.evaluation.knn``), so memory grows linearly with the number of
samples.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from benchmark.errors import BenchmarkError
from benchmark.evaluation.knn import nearest_neighbors
from benchmark.metric_catalog import CATEGORY_METRICS, category_key, recall_key

ArrayLike = Union[np.ndarray, torch.Tensor]

def as_embeddings(x: ArrayLike, name: str = "embeddings") -> np.ndarray:
    """A finite 2-d float32 numpy array (from numpy or torch); BenchmarkError otherwise."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise BenchmarkError(f"{name} must be a 2-d array (samples x dimensions), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise BenchmarkError(f"{name} contains NaN or infinite values")
    return np.ascontiguousarray(x, dtype=np.float32)


def as_labels(y: ArrayLike, n: int, name: str = "labels") -> np.ndarray:
    """A 1-d label array of length ``n`` (from numpy or torch); BenchmarkError otherwise."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise BenchmarkError(f"{name} has {len(y)} labels for {n} embeddings")
    return y


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def metrics_from_neighbors(neighbor_labels: np.ndarray, query_labels: np.ndarray, r: np.ndarray,
                           recall_at: Sequence[int] = (1,)) -> dict[str, float]:
    """Metrics from the labels of each query's ranked neighbours and each query's R (R > 0 only).

    ``neighbor_labels`` is Q x k with k >= max(R) and k >= max(recall_at).
    """
    rel = neighbor_labels == query_labels[:, None]
    k = rel.shape[1]
    ranks = np.arange(1, k + 1)
    within_r = ranks[None, :] <= r[:, None]
    rel_r = rel & within_r
    hits_cum = np.cumsum(rel_r, axis=1)
    precision_at_i = hits_cum / ranks[None, :]
    out = {
        "precision_at_1": float(rel[:, 0].mean()),
        "r_precision": float((rel_r.sum(axis=1) / r).mean()),
        "map_at_r": float(((precision_at_i * rel_r).sum(axis=1) / r).mean()),
    }
    for kk in recall_at:
        out[recall_key(kk)] = float(rel[:, :kk].any(axis=1).mean())
    return out


def compute_metrics(query: ArrayLike, query_labels: ArrayLike, reference: Optional[ArrayLike] = None,
                    reference_labels: Optional[ArrayLike] = None, *, recall_at: Sequence[int] = (1,),
                    use_gpu: bool = False, query_categories: Optional[Sequence] = None) -> dict[str, float]:
    """P@1, R-Precision, MAP@R and Recall@K of ``query`` against ``reference``.

    With ``reference=None`` the query set is ranked against itself, excluding each query.
    Embeddings are L2-normalised here. Returns a dict with keys ``precision_at_1``,
    ``r_precision``, ``map_at_r``, ``recall_at_{k}`` for each k, and ``num_queries`` (the queries
    that have at least one relevant reference sample and so were scored).

    With ``query_categories`` (one per query) the ``CATEGORY_METRICS`` of each category's queries are added as
    ``<metric>@<category>`` (``benchmark.metric_catalog.category_key``), from the same neighbours: a query is
    still ranked against the whole reference set.
    """
    q = l2_normalize(as_embeddings(query, "query"))
    ql = as_labels(query_labels, len(q), "query_labels")
    self_mode = reference is None
    if self_mode:
        if reference_labels is not None:
            raise BenchmarkError("reference_labels given without reference")
        ref, rl = q, ql
    else:
        if reference_labels is None:
            raise BenchmarkError("reference given without reference_labels")
        ref = l2_normalize(as_embeddings(reference, "reference"))
        rl = as_labels(reference_labels, len(ref), "reference_labels")
        if ref.shape[1] != q.shape[1]:
            raise BenchmarkError(f"query has {q.shape[1]} dimensions but reference has {ref.shape[1]}")
    recall_at = tuple(int(k) for k in recall_at)
    if any(k < 1 for k in recall_at):
        raise BenchmarkError(f"recall_at values must be >= 1, got {recall_at}")

    classes, counts = np.unique(rl, return_counts=True)
    count_of = dict(zip(classes.tolist(), counts.tolist()))
    r = np.array([count_of.get(y, 0) for y in ql.tolist()], dtype=np.int64)
    if self_mode:
        r -= 1
    scored = r > 0
    if not scored.any():
        raise BenchmarkError("no query has a relevant reference sample: every class is a singleton")
    n_ref_candidates = len(ref) - 1 if self_mode else len(ref)
    k = min(max(int(r.max()), max(recall_at, default=1)), n_ref_candidates)
    idx = nearest_neighbors(q, ref, k, exclude_self=self_mode, use_gpu=use_gpu)
    idx, ql_s, r_s = idx[scored], ql[scored], r[scored]
    out = metrics_from_neighbors(rl[idx], ql_s, r_s, recall_at)
    out["num_queries"] = int(scored.sum())
    if query_categories is not None:
        categories = np.asarray(query_categories, dtype=object).reshape(-1)
        if len(categories) != len(q):
            raise BenchmarkError(f"query_categories has {len(categories)} values for {len(q)} queries")
        categories = categories[scored]
        for category in sorted(set(categories.tolist()), key=str):
            mask = categories == category
            per = metrics_from_neighbors(rl[idx[mask]], ql_s[mask], r_s[mask], ())
            out.update({category_key(m, category): per[m] for m in CATEGORY_METRICS})
    return out
