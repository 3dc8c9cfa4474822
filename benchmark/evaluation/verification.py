"""Verification metrics (face-verification style): ROC AUC and TAR at a fixed FAR, threshold from validation.

A verification decision compares ONE pair of samples: accept ("same identity") when the cosine
similarity of their L2-normalised embeddings is ``>= threshold``. On a set of labelled samples:

* pairs (``verification_pairs``): every same-class unordered pair (positives; a seeded uniform
  sample without replacement of ``max_positives`` of them when there are more) and a seeded
  uniform sample without replacement of ``max_negatives`` different-class unordered pairs
  (all of them when there are fewer). Sampling is exact, not by rejection: the pairs of each kind
  are numbered 0 .. N − 1 (samples sorted by class; the positive partners of a sample are the later
  members of its class, its negative partners all samples of later classes), ``numpy``'s
  ``Generator.choice(N, k, replace=False)`` draws k numbers, which are mapped back to pairs in
  O(number of samples) memory. Positives and negatives use independent streams of ``seed``.
* ``roc_auc``: the area under the ROC curve of the similarities, = Mann–Whitney U / (n_pos · n_neg),
  a (positive, negative) tie counting ½.
* ``threshold_at_far``: the smallest threshold t (a float64) whose false-accept rate on the
  negatives, FAR(t) = #{negatives with s >= t} / n_neg, is <= ``far`` (so the true-accept rate is
  the largest possible under that constraint). With k = the largest integer with k / n_neg <= far
  and v the (k+1)-th largest negative similarity, t = nextafter(v, +inf): the negatives equal to v
  are all rejected, so with ties at v the realised FAR may be below ``far`` (never above). With
  fewer than 1 / far negatives k = 0 and t is just above the largest negative similarity (FAR = 0
  on validation). ``far >= 1`` gives t = −inf (accept everything).
* ``choose_threshold`` picks t on the VALIDATION classes; ``verification_metrics`` reports on the
  test classes the AUC, the TAR at that t (``tar_at_far_{far:.0e}``, e.g. ``tar_at_far_1e-03``) and
  the realised test FAR at that t (``far_at_threshold``), which shows whether the threshold transfers.

Pure numpy (plus ``scipy.stats.rankdata``); torch tensors on the CPU are accepted as arrays.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
from scipy.stats import rankdata

from benchmark.errors import BenchmarkError
from benchmark.metric_catalog import tar_key

#: Default caps on the number of pairs of each kind.
MAX_POSITIVES = 200_000
MAX_NEGATIVES = 200_000
#: Pairs whose similarities are computed at once (bounds the chunk x dim temporaries).
PAIR_CHUNK = 8192


def _labels(labels: Any) -> np.ndarray:
    y = np.asarray(labels).reshape(-1)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise BenchmarkError("labels contain NaN or infinite values")
    return y


def _check_cap(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise BenchmarkError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _sample_range(total: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """All of 0 .. total − 1 when total <= cap, else ``cap`` of them uniformly without replacement (sorted)."""
    if total <= cap:
        return np.arange(total, dtype=np.int64)
    return np.sort(rng.choice(total, size=cap, replace=False).astype(np.int64))


def _pairs_from_ranges(first: np.ndarray, count: np.ndarray, lin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map pair numbers ``lin`` to (p, q): position p owns the ``count[p]`` partners ``first[p] ..``, in order."""
    cum = np.cumsum(count)
    p = np.searchsorted(cum, lin, side="right")
    q = first[p] + (lin - (cum[p] - count[p]))
    return p, q


def verification_pairs(labels: Any, *, max_negatives: int = MAX_NEGATIVES, max_positives: int = MAX_POSITIVES,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unordered sample pairs ``(i, j, same)`` with ``i < j``: the positives first, then the negatives.

    Positives: every same-class pair, or ``max_positives`` of them sampled uniformly without
    replacement (seeded) when there are more. Negatives: ``max_negatives`` different-class pairs
    sampled uniformly without replacement (seeded), or all of them when there are fewer. No pair
    occurs twice; within each kind pairs are in a fixed order (by class, then position), and the
    result is a deterministic function of ``labels``, the caps and ``seed``.
    """
    y = _labels(labels)
    max_negatives = _check_cap("max_negatives", max_negatives)
    max_positives = _check_cap("max_positives", max_positives)
    n = len(y)
    _, codes = np.unique(y, return_inverse=True)
    order = np.argsort(codes.reshape(-1), kind="stable")
    sorted_codes = codes.reshape(-1)[order]
    # end[p]: one past the last sorted position of p's class
    end = np.searchsorted(sorted_codes, sorted_codes, side="right").astype(np.int64)
    pos = np.arange(n, dtype=np.int64)
    pos_first, pos_count = pos + 1, end - pos - 1
    neg_first, neg_count = end, n - end

    pos_rng = np.random.default_rng([seed, 0])
    neg_rng = np.random.default_rng([seed, 1])
    out_i, out_j = [], []
    for first, count, cap, rng in ((pos_first, pos_count, max_positives, pos_rng),
                                   (neg_first, neg_count, max_negatives, neg_rng)):
        lin = _sample_range(int(count.sum()), cap, rng)
        p, q = _pairs_from_ranges(first, count, lin)
        a, b = order[p], order[q]
        out_i.append(np.minimum(a, b))
        out_j.append(np.maximum(a, b))
    i = np.concatenate(out_i).astype(np.int64)
    j = np.concatenate(out_j).astype(np.int64)
    same = np.zeros(len(i), dtype=bool)
    same[:len(out_i[0])] = True
    return i, j, same


def pair_similarities(embeddings: Any, i: Any, j: Any, *, chunk: int = PAIR_CHUNK) -> np.ndarray:
    """Cosine similarities (float64, in [−1, 1]) of the L2-normalised rows ``i[k]`` and ``j[k]``.

    Computed ``chunk`` pairs at a time (memory linear in the number of pairs); a zero row has
    similarity 0 with everything.
    """
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise BenchmarkError(f"embeddings must be a 2-d array (samples x dimensions), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise BenchmarkError("embeddings contain NaN or infinite values")
    i, j = np.asarray(i, dtype=np.int64).reshape(-1), np.asarray(j, dtype=np.int64).reshape(-1)
    if len(i) != len(j):
        raise BenchmarkError(f"pair index arrays differ in length ({len(i)} vs {len(j)})")
    x = x.astype(np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # normalise each row once
    out = np.empty(len(i), dtype=np.float64)
    for start in range(0, len(i), chunk):
        out[start:start + chunk] = np.einsum("kd,kd->k", x[i[start:start + chunk]], x[j[start:start + chunk]])
    return np.clip(out, -1.0, 1.0)


def _scores(similarities: Any, same: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(similarities, dtype=np.float64).reshape(-1)
    t = np.asarray(same).reshape(-1)
    if len(s) != len(t):
        raise BenchmarkError(f"{len(s)} similarities for {len(t)} same-class flags")
    if np.isnan(s).any():
        raise BenchmarkError("similarities contain NaN")
    return s, t.astype(bool)


def roc_auc(similarities: Any, same: Any) -> float:
    """Area under the ROC curve: P(s_pos > s_neg) + ½ P(s_pos = s_neg) (Mann–Whitney U / (n_pos n_neg))."""
    s, t = _scores(similarities, same)
    n_pos = int(t.sum())
    n_neg = len(t) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise BenchmarkError(f"ROC AUC needs positive and negative pairs (got {n_pos} and {n_neg})")
    ranks = rankdata(s, method="average")  # ties share their average rank: a tie counts 1/2
    u = float(ranks[t].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def threshold_at_far(similarities: Any, same: Any, far: float) -> float:
    """The smallest threshold t with FAR(t) = #{negatives: s >= t} / n_neg <= ``far``.

    t = nextafter(v, +inf) with v the (k+1)-th largest negative similarity, k the largest integer
    with k / n_neg <= far: negatives tied at v are all rejected (realised FAR <= far). Fewer than
    1 / far negatives: t is just above the largest negative (FAR 0). ``far >= 1``: −inf.
    Positives do not influence t.
    """
    s, t = _scores(similarities, same)
    if isinstance(far, bool) or not isinstance(far, (int, float)) or not 0.0 <= far <= 1.0:
        raise BenchmarkError(f"far must be a number in [0, 1], got {far!r}")
    neg = s[~t]
    n_neg = len(neg)
    if n_neg == 0:
        raise BenchmarkError("a threshold at a false-accept rate needs negative pairs (got none)")
    k = int(math.floor(far * n_neg))
    while k + 1 <= n_neg and (k + 1) / n_neg <= far:  # guard against rounding in far * n_neg
        k += 1
    while k > 0 and k / n_neg > far:
        k -= 1
    if k >= n_neg:
        return -math.inf
    v = np.partition(neg, n_neg - 1 - k)[n_neg - 1 - k]  # the (k+1)-th largest
    return float(np.nextafter(v, np.inf))


def _rates(similarities: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    accept = similarities >= threshold
    return float(accept[same].mean()), float(accept[~same].mean())


def choose_threshold(val_embeddings: Any, val_labels: Any, far: float = 1e-3, seed: int = 0, *,
                     max_negatives: int = MAX_NEGATIVES, max_positives: int = MAX_POSITIVES) -> float:
    """The threshold at ``far`` on the validation samples' pairs (``verification_pairs`` then ``threshold_at_far``)."""
    i, j, same = verification_pairs(val_labels, max_negatives=max_negatives, max_positives=max_positives,
                                    seed=seed)
    return threshold_at_far(pair_similarities(val_embeddings, i, j), same, far)


def verification_metrics(test_embeddings: Any, test_labels: Any, *, threshold: Optional[float],
                         far: float = 1e-3, seed: int = 0, max_negatives: int = MAX_NEGATIVES,
                         max_positives: int = MAX_POSITIVES) -> dict[str, float]:
    """Verification metrics of the test pairs.

    Always ``roc_auc``; with a ``threshold`` (chosen on validation by ``choose_threshold`` at the
    same ``far``) also ``tar_at_far_{far:.0e}`` (fraction of test positives with s >= threshold)
    and ``far_at_threshold`` (fraction of test negatives with s >= threshold: the FAR the
    validation threshold really gives on the test classes).
    """
    i, j, same = verification_pairs(test_labels, max_negatives=max_negatives, max_positives=max_positives,
                                    seed=seed)
    sims = pair_similarities(test_embeddings, i, j)
    out = {"roc_auc": roc_auc(sims, same)}
    if threshold is not None:
        tar, realised_far = _rates(sims, same, float(threshold))
        out[tar_key(far)] = tar
        out["far_at_threshold"] = realised_far
    return out
