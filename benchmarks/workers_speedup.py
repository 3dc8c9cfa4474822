"""The quick leaderboard with ``--workers auto`` against ``--workers 1``: wall time, and the same table.

    python benchmarks/workers_speedup.py [--preset quick] [--rounds 1] [--keep DIR]

Each round runs ``dml-bench run --preset P --workers W --no-progress`` into a new run folder for W = 1
and W = auto, in turn (1 then auto, the next round auto then 1), with the cache warm (dataset,
pretrained trunk and trunk outputs are built first, by ``dml-bench prepare``, and not timed). Printed:
each run's wall time, the per-round ratio auto / 1 and its median, and whether every run's
``results.csv`` is byte-identical to the first one's. Also printed, to tell where a ratio above 1 / workers
comes from: the units' own time (the wall seconds ``trials.csv`` and ``cost.csv`` record for every search
trial, repeat and test evaluation: the same units in every run) and the rest (start-up, the time between
units, the report). Units that take longer with more workers mean the workers slow each other down (shared
cores, caches or memory bandwidth); a larger rest means the harness does. With ``--compare RUN``, also
whether the results equal that run folder's (e.g. the README's first command's). Quote the figures with the
machine (``lscpu``) and its load.
"""

from __future__ import annotations

import argparse
import csv
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


def unit_seconds(out: Path) -> float:
    """The wall seconds of every unit the run recorded (search trials, repeats, test evaluations)."""
    total = 0.0
    for name in ("trials.csv", "cost.csv"):
        with open(out / name, newline="") as f:
            total += sum(float(r["wall_seconds"] or 0) for r in csv.DictReader(f))
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--keep", help="keep the run folders here (default: a temporary folder)")
    p.add_argument("--compare", help="a run folder of the same preset whose results.csv every run should equal")
    args = p.parse_args()
    subprocess.run([sys.executable, str(ROOT / "run_benchmark.py"), "prepare", "--preset", args.preset,
                    "--no-progress"], cwd=ROOT, check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        times: dict[str, list[float]] = {"1": [], "auto": []}
        units: dict[str, list[float]] = {"1": [], "auto": []}
        reference = Path(args.compare, "results.csv").read_bytes() if args.compare else None
        same = True
        for r in range(args.rounds):
            for workers in (("1", "auto") if r % 2 == 0 else ("auto", "1")):
                out = base / f"round{r}-workers-{workers}"
                seconds = run(args.preset, workers, out)
                times[workers].append(seconds)
                units[workers].append(unit_seconds(out))
                results = (out / "results.csv").read_bytes()
                reference = reference or results
                same = same and results == reference
                print(f"round {r + 1} --workers {workers:4s} {seconds:8.1f} s (units' own time "
                      f"{units[workers][-1]:.1f} s)", flush=True)
        ratios = [a / b for a, b in zip(times["auto"], times["1"])]
        print(f"auto / 1: median {statistics.median(ratios):.3f} (rounds {', '.join(f'{x:.3f}' for x in ratios)})")
        slow = [a / b for a, b in zip(units["auto"], units["1"])]
        print(f"units' own time, auto / 1: median {statistics.median(slow):.3f} (the same units; above 1: the "
              f"workers slow each other down)")
        print(f"results.csv identical across all runs{' and to ' + args.compare if args.compare else ''}: {same}")


if __name__ == "__main__":
    main()
