"""Exact evaluation at SOP's test size: time and peak memory of compute_metrics on random embeddings.

    /usr/bin/time -v python benchmarks/eval_scale.py --n 60502 --dim 512 [--baseline]

``--baseline`` times a bare faiss IndexFlatIP search with k = largest class size + 1 on the same data
(the floor for exact evaluation); the ratio of the two is the figure to compare across machines.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=60502)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--classes", type=int, default=11316)
    p.add_argument("--baseline", action="store_true")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, args.classes, size=args.n)
    emb = rng.normal(size=(args.n, args.dim)).astype(np.float32)
    if args.baseline:
        import faiss

        k = int(np.bincount(labels).max()) + 1
        t = time.perf_counter()
        x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        index = faiss.IndexFlatIP(args.dim)
        index.add(x)
        index.search(x, k)
        print(f"faiss IndexFlatIP k={k}: {time.perf_counter() - t:.1f} s")
    from benchmark.evaluation import compute_metrics

    t = time.perf_counter()
    m = compute_metrics(emb, labels, recall_at=(1, 10))
    print(f"compute_metrics {args.n} x {args.dim}: {time.perf_counter() - t:.1f} s; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB; {m}")


if __name__ == "__main__":
    main()
