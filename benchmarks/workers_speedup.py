"""The quick leaderboard with ``--workers auto`` against ``--workers 1``: wall time, and the same table.

    python benchmarks/workers_speedup.py [--preset quick] [--rounds 1] [--keep DIR]

Each round runs ``dml-bench run --preset P --workers W --no-progress`` into a new run folder for W = 1
and W = auto, in turn (1 then auto, the next round auto then 1), with the cache warm (dataset,
pretrained trunk and trunk outputs are built first, by ``dml-bench prepare``, and not timed). Printed:
each run's wall time, the per-round ratio auto / 1 and its median, and whether every run's
``results.csv`` is byte-identical to the first one's. Quote the figures with the machine (``lscpu``)
and its load.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(preset: str, workers: str, out: Path) -> float:
    cmd = [sys.executable, str(ROOT / "run_benchmark.py"), "run", "--preset", preset, "--workers", workers,
           "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"--workers {workers} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--keep", help="keep the run folders here (default: a temporary folder)")
    args = p.parse_args()
    subprocess.run([sys.executable, str(ROOT / "run_benchmark.py"), "prepare", "--preset", args.preset,
                    "--no-progress"], cwd=ROOT, check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        times: dict[str, list[float]] = {"1": [], "auto": []}
        reference = None
        same = True
        for r in range(args.rounds):
            for workers in (("1", "auto") if r % 2 == 0 else ("auto", "1")):
                out = base / f"round{r}-workers-{workers}"
                seconds = run(args.preset, workers, out)
                times[workers].append(seconds)
                results = (out / "results.csv").read_bytes()
                reference = reference or results
                same = same and results == reference
                print(f"round {r + 1} --workers {workers:4s} {seconds:8.1f} s", flush=True)
        ratios = [a / b for a, b in zip(times["auto"], times["1"])]
        print(f"auto / 1: median {statistics.median(ratios):.3f} (rounds {', '.join(f'{x:.3f}' for x in ratios)})")
        print(f"results.csv identical across all runs: {same}")


if __name__ == "__main__":
    main()
