"""Exact k nearest neighbours by inner product, at the machine's BLAS floor whatever a dependency detects.

Two exact backends search the same thing: ``torch`` (a chunked matrix product and ``topk``, on the
CPU with torch's own BLAS, or on a GPU) and ``faiss`` (a flat inner-product index; faiss-gpu on a
GPU). Which is faster depends on the machine: faiss-cpu's bundled OpenBLAS picks its kernel by CPU
detection and falls back to its oldest one on CPUs it does not know (5x slower on an Ice Lake Xeon),
while torch's BLAS may lag behind a correct OpenBLAS kernel elsewhere. :func:`choose_backend`
therefore measures both once per process on a probe of the problem's width and keeps the faster
(``DML_BENCH_KNN=torch|faiss`` forces one); small searches, where the choice costs more than it
saves, use torch.

Both backends return the same neighbours: each hands over ``k + MARGIN`` candidates per query,
which are ranked again by their similarity recomputed row by row in the same float operations
whichever backend found them, ties broken by the lower index (the order a stable sort gives).
Rounding differences between the backends' BLAS kernels therefore never change the result, and two
identical references keep their index order. Memory grows linearly with the number of samples:
queries are searched in chunks whose similarity block stays under ``BLOCK_BYTES``.
"""

from __future__ import annotations

import logging
import os
import time

import faiss
import numpy as np
import torch

from benchmark.errors import ConfigError

log = logging.getLogger(__name__)

#: Environment variable forcing a backend (``torch``, ``faiss``; ``auto`` or unset: measured).
ENV = "DML_BENCH_KNN"
BACKENDS = ("torch", "faiss")
#: Extra candidates per query that the float64 re-ranking chooses from.
MARGIN = 8
#: Largest queries x references x dimensions searched without measuring the backends first (the
#: measurement costs about a tenth of a search this size).
PROBE_ABOVE = 20_000_000_000
#: Bytes of one chunk's similarity block (torch backend).
BLOCK_BYTES = 256 * 2 ** 20
#: Most queries per chunk (bounds the Q x k arrays of either backend).
QUERY_CHUNK = 8192
#: Queries re-ranked at a time (bounds the gathered candidates: rows x (k + MARGIN) x dim floats).
RERANK_ROWS = 256
_chosen: dict[tuple[str, int], str] = {}


def _gpu_wanted(use_gpu: bool) -> str:
    """``cuda`` when a GPU search is asked for and possible, else ``cpu``."""
    return "cuda" if use_gpu and torch.cuda.is_available() else "cpu"


def _faiss_gpu() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def chunk_rows(n_reference: int) -> int:
    """Queries per chunk: the similarity block stays under ``BLOCK_BYTES`` (at least 16 rows), at most
    ``QUERY_CHUNK``."""
    return int(min(QUERY_CHUNK, max(16, BLOCK_BYTES // (4 * max(1, n_reference)))))


class _Searcher:
    """Candidates (Q' x c indices, unordered) of a chunk of queries, by one backend."""

    def __init__(self, backend: str, reference: np.ndarray, device: str) -> None:
        self.backend = backend
        if backend == "faiss":
            index = faiss.IndexFlatIP(reference.shape[1])
            if device == "cuda" and _faiss_gpu():
                index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
            index.add(reference)
            self.index = index
        else:
            self.ref_t = torch.from_numpy(reference).to(device).T.contiguous()
            self.device = device

    def candidates(self, queries: np.ndarray, c: int) -> np.ndarray:
        if self.backend == "faiss":
            return self.index.search(queries, c)[1]
        with torch.no_grad():
            sims = torch.from_numpy(queries).to(self.device) @ self.ref_t
            return torch.topk(sims, c, dim=1, sorted=False).indices.cpu().numpy()


def _probe(device: str, dim: int) -> str:
    """The faster backend on this machine for width ``dim``, measured once (1024 x 8192 references)."""
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((8192, dim), dtype=np.float32)
    queries = ref[:1024].copy()
    times = {}
    for backend in BACKENDS:
        searcher = _Searcher(backend, ref, device)
        searcher.candidates(queries[:64], 16)  # warm-up (thread pools, kernels)
        start = time.perf_counter()
        searcher.candidates(queries, 16)
        times[backend] = time.perf_counter() - start
    best = min(times, key=times.get)
    log.info("exact kNN backend: %s (probe %s)", best,
             ", ".join(f"{b} {t * 1000:.0f} ms" for b, t in times.items()))
    return best


def choose_backend(n_query: int, n_reference: int, dim: int, *, use_gpu: bool = False) -> str:
    """``torch`` or ``faiss``: forced by ``DML_BENCH_KNN``, torch for small searches, else the faster one."""
    forced = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if forced in BACKENDS:
        return forced
    if forced != "auto":
        raise ConfigError(f"environment variable {ENV} must be torch, faiss or auto, got {forced!r}")
    device = _gpu_wanted(use_gpu)
    if device == "cuda" and _faiss_gpu():
        return "faiss"
    if n_query * n_reference * dim <= PROBE_ABOVE:
        return "torch"
    key = (device, dim)
    if key not in _chosen:
        _chosen[key] = _probe(device, dim)
    return _chosen[key]


def _rerank(queries: np.ndarray, reference: np.ndarray, cand: np.ndarray, k: int,
            self_index: np.ndarray | None) -> np.ndarray:
    """The k best of each row's candidates by their similarity recomputed row by row (the same float
    operations whichever backend found them), ties by lower index; ``self_index`` (each query's own
    row in ``reference``) is never returned. Works through ``RERANK_ROWS`` queries at a time."""
    out = np.empty((len(cand), k), dtype=np.int64)
    for start in range(0, len(cand), RERANK_ROWS):
        stop = min(start + RERANK_ROWS, len(cand))
        c = cand[start:stop]
        sims = np.einsum("qd,qcd->qc", queries[start:stop], reference[c])
        if self_index is not None:
            sims[c == self_index[start:stop, None]] = -np.inf
        order = np.lexsort((c, -sims), axis=-1)[:, :k]
        out[start:stop] = np.take_along_axis(c, order, axis=1)
    return out


def nearest_neighbors(query: np.ndarray, reference: np.ndarray, k: int, *, exclude_self: bool,
                      use_gpu: bool = False, backend: str | None = None) -> np.ndarray:
    """Indices (Q x k) of the k most similar reference rows of each query row, by inner product.

    ``query`` and ``reference`` are C-contiguous float32 (L2-normalised for cosine order). With
    ``exclude_self`` (query is reference) each query's own row is never among its neighbours; an
    exact duplicate of it is. ``backend`` overrides :func:`choose_backend`.
    """
    n_ref = len(reference)
    if exclude_self and k > n_ref - 1 or k > n_ref:
        raise ValueError(f"k = {k} neighbours asked of {n_ref} reference rows (exclude_self={exclude_self})")
    backend = backend or choose_backend(len(query), n_ref, reference.shape[1], use_gpu=use_gpu)
    searcher = _Searcher(backend, reference, _gpu_wanted(use_gpu))
    c = min(k + MARGIN + (1 if exclude_self else 0), n_ref)
    rows = chunk_rows(n_ref)
    out = np.empty((len(query), k), dtype=np.int64)
    for start in range(0, len(query), rows):
        stop = min(start + rows, len(query))
        cand = searcher.candidates(query[start:stop], c).astype(np.int64, copy=False)
        own = np.arange(start, stop) if exclude_self else None
        out[start:stop] = _rerank(query[start:stop], reference, cand, k, own)
    return out
