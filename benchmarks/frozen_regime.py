"""Milliseconds per training iteration of the two regimes on the same method and data, and the quick leaderboard's time.

    python benchmarks/frozen_regime.py [--method contrastive] [--iterations 200] [--leaderboard [--fresh-cache]]

Both regimes train fold 0 of the quick preset's built-in dataset with the quick preset's settings
(end-to-end: the small CNN and the embedder on augmented images; frozen: the embedder on cached trunk
outputs), for ``--iterations`` iterations and one validation at the end; the figure is the training
loop's wall time over the iterations (model building and the validation excluded). Data generation,
pretraining and the frozen regime's cache are built before the timing (and reported). ``--leaderboard``
then runs ``run --preset quick`` into a temporary folder and prints its wall time; ``--fresh-cache``
gives that run an empty cache folder, so that it generates the dataset, pretrains the trunk and
computes the trunk outputs itself, as on a new machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch


def time_regime(regime: str, method: str, iterations: int) -> tuple[float, float]:
    """(seconds to prepare the dataset, ms per training iteration) of ``regime`` on the quick preset."""
    from benchmark.protocol.run_config import load_run_config
    from benchmark.methods import MethodContext, get_method
    from benchmark.protocol.workbench import Workbench
    from benchmark.training import trainer
    from benchmark.training.threads import torch_threads

    cfg = load_run_config(preset="quick", overrides=[f"training.regime={regime}", "training.max_epochs=1",
                                                 f"training.iterations_per_epoch={iterations}"])
    bench = Workbench(cfg, progress=False)
    dcfg = cfg.datasets[0]
    start = time.perf_counter()
    data = bench.dataset(dcfg)
    prepared = time.perf_counter() - start
    fold, tcfg = data.folds[0], cfg.training_for(dcfg)
    spec = get_method(method)
    with torch_threads(tcfg.threads):
        model = data.models.new(0)
        ctx = MethodContext(num_classes=fold.num_classes, embedding_dim=cfg.model.embedding_dim,
                            device=bench.device)
        loop = {"seconds": 0.0}
        validate = trainer.validate

        def timed_validate(*args, **kwargs):  # the loop ends where the (only) validation starts
            loop["seconds"] = time.perf_counter() - loop["start"]
            return validate(*args, **kwargs)

        trainer.validate = timed_validate
        try:
            loop["start"] = time.perf_counter()
            _, result = trainer.train_fold(model=model, method=spec.create(ctx), train_set=fold.train,
                                           train_eval_set=fold.train_eval, val_set=fold.val, cfg=tcfg,
                                           device=bench.device, seed=0, m_per_class=spec.m_per_class,
                                           progress=False)
        finally:
            trainer.validate = validate
    return prepared, 1000.0 * loop["seconds"] / max(result.iterations, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="contrastive")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--leaderboard", action="store_true", help="also time run --preset quick")
    p.add_argument("--fresh-cache", action="store_true", help="the leaderboard run starts from an empty cache")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    for regime in ("end_to_end", "frozen"):
        prepared, ms = time_regime(regime, args.method, args.iterations)
        print(f"{regime:>10}: {ms:6.2f} ms/iteration ({args.method}, {args.iterations} iterations; "
              f"dataset prepared in {prepared:.1f} s)")
    if args.leaderboard:
        from benchmark.cli import main as cli

        with tempfile.TemporaryDirectory() as tmp:
            if args.fresh_cache:
                os.environ["DML_BENCH_CACHE"] = os.path.join(tmp, "cache")
            start = time.perf_counter()
            code = cli(["run", "--preset", "quick", "--out", os.path.join(tmp, "quick"), "--no-progress"])
            wall = time.perf_counter() - start
        print(f"quick leaderboard: {wall / 60:.1f} min (exit {code}), load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
