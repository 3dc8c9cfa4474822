"""Exact evaluation at SOP's test size against the machine's floor: wall time and peak memory.

    python benchmarks/eval_scale.py [--n 60502] [--dim 512] [--rounds 3]

Each round runs, each in a fresh process and in turn, on the same random embeddings (N x dim,
SOP's 11,316 classes):
  * ``metrics``: the harness's ``compute_metrics`` (backend chosen as in a run, Recall@1 and @10);
  * ``torch``:   a bare chunked torch matrix product + ``topk`` with k = largest class (the floor the
                 issue names; 1024 queries a chunk);
  * ``faiss``:   a bare faiss ``IndexFlatIP`` search with the same k (whatever kernel faiss-cpu's own
                 OpenBLAS detects on this CPU).
Printed: each mode's median wall time (the search and metrics only: data generation excluded) and
peak resident memory of its process, the median of the per-round ratios metrics / torch, and the
BLAS kernels threadpoolctl reports. Quote the figures with the machine (``lscpu``) they came from.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

MODES = ("metrics", "torch", "faiss")


def data(n: int, dim: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, size=n)
    return rng.normal(size=(n, dim)).astype(np.float32), labels


def run_mode(mode: str, n: int, dim: int, classes: int) -> dict:
    """One measurement in this process: seconds and the metrics or a checksum."""
    emb, labels = data(n, dim, classes)
    k = int(np.bincount(labels).max())
    start = time.perf_counter()
    if mode == "metrics":
        from benchmark.evaluation import compute_metrics

        out = compute_metrics(emb, labels, recall_at=(1, 10))
    else:
        x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        if mode == "torch":
            import torch

            t = torch.from_numpy(x)
            idx = [torch.topk(t[s:s + 1024] @ t.T, k, dim=1).indices for s in range(0, n, 1024)]
            out = {"checksum": int(torch.cat(idx)[:, 0].sum())}
        else:
            import faiss

            index = faiss.IndexFlatIP(dim)
            index.add(x)
            out = {"checksum": int(index.search(x, k)[1][:, 0].sum())}
    return {"seconds": time.perf_counter() - start, **out}


def measure(mode: str, args) -> tuple[float, float]:
    """(seconds, peak RSS in GB) of one fresh process running ``mode``."""
    cmd = [sys.executable, __file__, "--child", mode, "--n", str(args.n), "--dim", str(args.dim),
           "--classes", str(args.classes)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read()
    if status != 0:
        raise SystemExit(f"{mode} failed (status {status})")
    result = json.loads(out.strip().splitlines()[-1])
    return result["seconds"], usage.ru_maxrss / 1e6


def kernels() -> str:
    try:
        import faiss  # noqa: F401 - load its OpenBLAS too
        import torch  # noqa: F401
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version', '')} {i.get('architecture', '')} "
                     f"({os.path.basename(i['filepath'])})" for i in threadpool_info()
                     if i.get("user_api") == "blas")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=60502)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--classes", type=int, default=11316)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(run_mode(args.child, args.n, args.dim, args.classes)))
        return
    print(f"N = {args.n}, dim = {args.dim}; BLAS: {kernels()}", flush=True)
    times: dict[str, list[float]] = {m: [] for m in MODES}
    peaks: dict[str, float] = {m: 0.0 for m in MODES}
    for r in range(args.rounds):
        order = MODES if r % 2 == 0 else MODES[::-1]
        for mode in order:
            seconds, peak = measure(mode, args)
            times[mode].append(seconds)
            peaks[mode] = max(peaks[mode], peak)
            print(f"round {r + 1} {mode:7s} {seconds:7.2f} s  peak {peak:.2f} GB", flush=True)
    for mode in MODES:
        print(f"{mode:7s} median {statistics.median(times[mode]):7.2f} s  peak {peaks[mode]:.2f} GB")
    ratios = [a / b for a, b in zip(times["metrics"], times["torch"])]
    print(f"metrics / bare torch: median {statistics.median(ratios):.3f} "
          f"(rounds {', '.join(f'{x:.3f}' for x in ratios)})")


if __name__ == "__main__":
    main()
