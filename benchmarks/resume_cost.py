"""What a stopped unit costs: a leaderboard run straight through, against one stopped mid-unit and resumed.

    python benchmarks/resume_cost.py [--preset smoke] [--methods A,B] [--set KEY=VALUE ...] [--keep DIR]

Three runs of ``dml-bench run --preset P --no-progress``, each into a new run folder, with the cache warm
(``dml-bench prepare`` first, not timed):

* straight: one uninterrupted worker;
* SIGTERM: a worker is sent SIGTERM as soon as the first unit's checkpoint shows at least half of its folds
  finished (``<run>/checkpoints/<study>/<unit>/fold-<i>.pt``), then the same command is run again; timed from
  the first start to the second's end (the seconds from the signal to the worker's exit are printed too);
* SIGKILL: the same, with SIGKILL (no checkpoint written at the signal; the unit's last validation state
  stands) and a new worker that takes the dead worker's unit over.

Printed: each run's wall time, the ratio of each interrupted run to the straight one (before checkpoints
a stopped unit was trained again from its start), and whether each ``results.csv`` is byte-identical to the
straight run's. Quote the figures with the machine (``lscpu``) and its load.
"""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark.protocol.run_config import load_run_config  # noqa: E402
from benchmark.protocol.unit_checkpoint import CHECKPOINT_DIR  # noqa: E402


def command(preset: str, options: list[str], out: Path) -> list[str]:
    return [sys.executable, str(ROOT / "run_benchmark.py"), "run", "--preset", preset, "--out", str(out),
            "--no-progress", *options]


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return time.perf_counter() - start


def half_trained(out: Path, n_folds: int) -> bool:
    """A unit's checkpoint holds at least half of its folds finished."""
    need = max(1, math.ceil(n_folds / 2))
    return any(len(list(unit.glob("fold-*.pt"))) >= need for unit in (out / CHECKPOINT_DIR).glob("*/*"))


def interrupted(cmd: list[str], out: Path, n_folds: int, sig: int) -> tuple[float, float]:
    """Wall time of a run stopped by ``sig`` once a unit is half trained and then run again; and the seconds
    from the signal to the worker's exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not half_trained(out, n_folds):
        if proc.poll() is not None:
            raise SystemExit(f"the run ended ({proc.returncode}) before any unit was half trained: "
                             f"{proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    signalled = time.perf_counter()
    proc.send_signal(sig)
    _, err = proc.communicate()
    exited = time.perf_counter()
    expected = 143 if sig == signal.SIGTERM else -signal.SIGKILL
    if proc.returncode != expected:
        raise SystemExit(f"the stopped worker exited with {proc.returncode}, expected {expected}: {err[-2000:]}")
    first = exited - start
    return first + run(cmd), exited - signalled


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="smoke")
    p.add_argument("--methods", help="comma-separated methods (default: the preset's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--keep", help="keep the run folders here (default: a temporary folder)")
    args = p.parse_args()
    n_folds = load_run_config(preset=args.preset, overrides=args.overrides).protocol.n_folds
    options = [a for kv in args.overrides for a in ("--set", kv)]
    options += ["--methods", args.methods] if args.methods else []
    subprocess.run([sys.executable, str(ROOT / "run_benchmark.py"), "prepare", "--preset", args.preset, *options,
                    "--no-progress"], cwd=ROOT, check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        straight = run(command(args.preset, options, base / "straight"))
        reference = (base / "straight" / "results.csv").read_bytes()
        print(f"straight             {straight:8.1f} s", flush=True)
        for name, sig in (("SIGTERM + re-run", signal.SIGTERM), ("SIGKILL + takeover", signal.SIGKILL)):
            out = base / name.split()[0].lower()
            seconds, exit_after = interrupted(command(args.preset, options, out), out, n_folds, sig)
            same = (out / "results.csv").read_bytes() == reference
            print(f"{name:20s} {seconds:8.1f} s  ratio {seconds / straight:.3f}  exit {exit_after:.1f} s after the "
                  f"signal  results.csv identical: {same}", flush=True)


if __name__ == "__main__":
    main()
