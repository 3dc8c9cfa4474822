"""Difficulty calibration of the built-in dataset, on its training classes only: is it a metric-learning problem?

Runs the harness itself — a ``Workbench`` over the built-in dataset, ``train_folds`` (the protocol's
fold training: class-balanced batches, validation, early stopping on the best checkpoint) and the
harness's exact metrics (``benchmark.evaluation``) — and never the test classes: every number comes
from the cross-validation folds' validation classes, which are training classes. Per ``context_bias``:

* **Pretrained**: the cached pretrained small CNN with an untrained embedder (the tables' "Pretrained"
  row), on each fold's validation classes;
* per method (at its registered defaults): the fold models' best validation MAP@R during training
  (on the validation classes as the run renders them), and the best checkpoint's MAP@R and P@1 on the
  same validation classes rendered **without** context bias (the generator changes only backgrounds
  with ``context_bias``: same seed, same glyphs). A strong bias helps on the biased rendering and hurts
  on the unbiased one: the context bias DCML targets, measured without a test class.

Means over the folds, in percent. A fold validates on a quarter of the training classes (50 of the default
400 classes' 200), so its MAP@R runs higher than on the 200 test classes (fewer distractors): read the
trained rows against Pretrained and the biases against each other, not against the papers' test ranges.

    python benchmarks/calibrate_builtin.py --methods contrastive,multi_similarity --biases 0,0.9

Measured with the defaults (200 iterations per fold, validation every 50; seed 0, 400 classes x 24 images,
4 folds, Adam lr 1e-3 on trunk and embedder, one thread; 4 min 31 s on 2 CPU cores shared with other jobs,
load average ~12):

    bias  method             val MAP@R  unbiased MAP@R  unbiased P@1
       0  pretrained             27.10           27.10         67.21
       0  contrastive            27.31           27.31         67.35
       0  multi_similarity       29.72           29.72         71.29
     0.9  pretrained             29.57           27.10         67.21
     0.9  contrastive            33.49           11.18         46.02
     0.9  multi_similarity       37.58           15.06         53.27

The bias of 0.9 raises the MAP@R on the biased rendering of the validation classes (the background
predicts the class) and cuts it on their unbiased rendering by 12 to 16 points below Pretrained.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.config import BenchmarkConfig, DatasetConfig
from benchmark.protocol.run_config import assemble_config
from benchmark.data.builtin import DEFAULT_IMAGES_PER_CLASS, DEFAULT_NUM_CLASSES
from benchmark.evaluation.embed import embed
from benchmark.evaluation.metrics import compute_metrics
from benchmark.protocol.workbench import PreparedDataset, Workbench
from benchmark.training.threads import torch_threads

#: The label of the unbiased rendering of the same classes.
CLEAN = "builtin-clean"


@dataclass(frozen=True)
class Row:
    """One line of the calibration: a method (or Pretrained) at one bias, fold means as fractions."""

    bias: float
    method: str
    val_map_at_r: float
    clean_map_at_r: float
    clean_precision_at_1: float
    seconds: float


def calibration_config(*, bias: float, methods: Sequence[str], seed: int = 0,
                       num_classes: int = DEFAULT_NUM_CLASSES, images_per_class: int = DEFAULT_IMAGES_PER_CLASS,
                       folds: int = 4, iterations: int = 200, val_every: int = 50, lr: float = 1e-3,
                       pretrain_epochs: int = 8, threads: int = 1) -> BenchmarkConfig:
    """The run's config: the built-in dataset at ``bias`` (and, when biased, its unbiased rendering),
    end-to-end training of trunk and embedder for ``iterations`` per fold, validation every ``val_every``."""
    options = {"seed": seed, "num_classes": num_classes, "images_per_class": images_per_class}
    datasets = [{"name": "builtin", "label": f"builtin-bias{bias:g}", "options": {**options, "context_bias": bias}}]
    if bias:
        datasets.append({"name": "builtin", "label": CLEAN, "options": {**options, "context_bias": 0.0}})
    epochs = max(1, math.ceil(iterations / val_every))
    return assemble_config({
        "name": "calibration", "seed": seed, "device": "cpu", "methods": list(methods), "datasets": datasets,
        "model": {"trunk": "small_cnn", "embedding_dim": 128, "pretrained": True, "pretrain_epochs": pretrain_epochs},
        "training": {"batch_size": 32, "m_per_class": 4, "iterations_per_epoch": val_every, "max_epochs": epochs,
                     "val_interval": 1, "patience": epochs, "optimizer": "adam", "lr_trunk": lr,
                     "lr_embedder": lr, "threads": threads},
        "protocol": {"n_folds": folds},
        "evaluation": {"verification_far": None},
    })


def validation_metrics(bench: Workbench, models: Sequence, data: PreparedDataset) -> dict[str, float]:
    """MAP@R and P@1 of fold model i on fold i's validation classes of ``data``, means over the folds."""
    values = []
    for model, fold in zip(models, data.folds):
        emb = embed(model, fold.val, device=bench.device, batch_size=256)
        values.append(compute_metrics(emb, fold.val.labels))
    return {k: float(np.mean([v[k] for v in values])) for k in ("map_at_r", "precision_at_1")}


def _same_folds(a: PreparedDataset, b: PreparedDataset) -> None:
    for fa, fb in zip(a.splits.folds, b.splits.folds, strict=True):
        if not np.array_equal(fa.val_classes, fb.val_classes):
            raise RuntimeError("the biased and unbiased renderings split their classes differently")


def calibrate(cfg: BenchmarkConfig) -> list[Row]:
    """Pretrained and every method of ``cfg`` on the folds of its first dataset; see the module docstring."""
    bench = Workbench(cfg, progress=False)
    biased_cfg: DatasetConfig = cfg.datasets[0]
    bias = float(biased_cfg.options["context_bias"])
    biased = bench.dataset(biased_cfg)
    clean = bench.dataset(cfg.datasets[1]) if len(cfg.datasets) > 1 else biased
    _same_folds(biased, clean)
    rows = []
    with torch_threads(cfg.training.threads):
        start = time.perf_counter()
        models = bench.untrained_models(biased_cfg, ("calibration", "pretrained"))
        before = validation_metrics(bench, models, biased)["map_at_r"]
        after = validation_metrics(bench, models, clean)
        rows.append(Row(bias, "pretrained", before, after["map_at_r"], after["precision_at_1"],
                        time.perf_counter() - start))
    for method in cfg.methods:
        start = time.perf_counter()
        trained = bench.train_folds(method, {}, biased_cfg, ("calibration", method), desc=method)
        with torch_threads(cfg.training.threads):
            after = validation_metrics(bench, [model for model, _ in trained], clean)
        rows.append(Row(bias, method, float(np.mean([r.best_value for _, r in trained])), after["map_at_r"],
                        after["precision_at_1"], time.perf_counter() - start))
    return rows


def table(rows: Sequence[Row]) -> str:
    """The rows as a plain-text table in percent."""
    lines = [f"{'bias':>4}  {'method':<18} {'val MAP@R':>9}  {'unbiased MAP@R':>14}  {'unbiased P@1':>12}  {'s':>5}"]
    lines += [f"{r.bias:>4g}  {r.method:<18} {100 * r.val_map_at_r:9.2f}  {100 * r.clean_map_at_r:14.2f}  "
              f"{100 * r.clean_precision_at_1:12.2f}  {r.seconds:5.0f}" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="contrastive,multi_similarity")
    parser.add_argument("--biases", default="0,0.9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-classes", type=int, default=DEFAULT_NUM_CLASSES)
    parser.add_argument("--images-per-class", type=int, default=DEFAULT_IMAGES_PER_CLASS)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=200, help="training iterations per fold")
    parser.add_argument("--val-every", type=int, default=50, help="iterations between validations")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    for bias in (float(b) for b in args.biases.split(",")):
        cfg = calibration_config(bias=bias, methods=args.methods.split(","), seed=args.seed,
                                 num_classes=args.num_classes, images_per_class=args.images_per_class,
                                 folds=args.folds, iterations=args.iterations, val_every=args.val_every,
                                 lr=args.lr, pretrain_epochs=args.pretrain_epochs, threads=args.threads)
        print(table(calibrate(cfg)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
