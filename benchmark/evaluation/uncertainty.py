"""Embedding norm as an uncertainty score: its correlation with per-query retrieval success.

Probabilistic embeddings (e.g. EL-nivMF, Kirchhof et al., ECCV 2022) read an unnormalised embedding
e as a vMF with direction e/‖e‖ and concentration κ = ‖e‖: a large norm should mean a confident,
and so more often correct, embedding. ``norm_p1_correlation`` measures this on a test set ranked
against itself (as the protocol's metrics): for each query, P@1 ∈ {0, 1} says whether its nearest
other sample by cosine similarity has its label (``benchmark.evaluation.metrics.nearest_neighbors``
on L2-normalised copies, the query itself excluded); queries whose class has no other sample are
left out. Returned: Spearman's ρ and Pearson's r between κ and P@1 over the scored queries
(Pearson on a binary variable is the point-biserial correlation). Either is NaN when κ or P@1 is
constant over the scored queries (κ up to a relative spread of 1e-6, the
rounding of float32 embeddings), or when fewer than two queries are scored.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
from scipy import stats

from benchmark.evaluation.metrics import as_embeddings, as_labels, l2_normalize, nearest_neighbors

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Norms within this relative spread of each other count as equal (rounding of float32 embeddings).
NORM_RTOL = 1e-6


def per_query_precision_at_1(embeddings: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(P@1 of every query as 0/1 floats, mask of the scored queries), the set ranked against itself."""
    x = as_embeddings(embeddings)
    y = as_labels(labels, len(x))
    q = np.ascontiguousarray(l2_normalize(x.astype(np.float32)), dtype=np.float32)
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    scored = counts[inverse] > 1
    p1 = np.zeros(len(x), dtype=np.float64)
    if len(x) >= 2:
        nn = nearest_neighbors(q, q, 1, exclude_self=True)[:, 0]
        p1 = (y[nn] == y).astype(np.float64)
    return p1, scored


def norm_p1_correlation(embeddings: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """Spearman and Pearson correlation between the embedding norm κ and the per-query P@1.

    Keys ``kappa_p1_spearman`` and ``kappa_p1_pearson`` (NaN where undefined: constant κ (relative
    spread ≤ ``NORM_RTOL``) or P@1, or fewer than two scored queries).
    """
    x = as_embeddings(embeddings)  # validated float32 copy, for the neighbour search
    p1, scored = per_query_precision_at_1(x, labels)
    raw = embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
    kappa = np.linalg.norm(raw.astype(np.float64), axis=1)[scored]  # norms at the input's own precision
    p1 = p1[scored]
    nan = {"kappa_p1_spearman": math.nan, "kappa_p1_pearson": math.nan}
    if len(p1) < 2 or np.ptp(kappa) <= NORM_RTOL * np.abs(kappa).max() or np.all(p1 == p1[0]):
        return nan
    return {"kappa_p1_spearman": float(stats.spearmanr(kappa, p1).statistic),
            "kappa_p1_pearson": float(stats.pearsonr(kappa, p1).statistic)}
