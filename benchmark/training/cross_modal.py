"""Training one fold of a two-tower model on a paired dataset (cross-modal alignment).

The loop of ``benchmark.training.trainer`` for two modalities: each batch holds ``batch_size / m``
classes with ``m`` items of modality A (one random cached view each) and ``m`` items of modality B of
the same classes (``PairedBatches``); the loss is the method's cross-modal mode
(``benchmark.methods.cross_modal``); the validation value is the mean of both directions' MAP@R on the
fold's validation classes; the best-validation checkpoint, early stopping, the trunk warm-up and
divergence are the single-modality trainer's. Both towers train (tower A's trunk at ``lr_trunk``, the
embedders at ``lr_embedder``, the method's own parameters in their own group).
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

import numpy as np
import torch

from benchmark.config import TrainingConfig
from benchmark.data.tensor_sets import TensorSet, ViewSet
from benchmark.evaluation.cross_modal import validation_map_at_r
from benchmark.methods.cross_modal import CrossModalLoss
from benchmark.models.two_tower import TwoTowerModel
from benchmark.training.checkpoint import BestCheckpoint
from benchmark.training.divergence import loss_diverged
from benchmark.training.optim import OPTIMIZERS
from benchmark.training.progress import FoldProgress
from benchmark.training.samplers import ClassBalancedBatches
from benchmark.training.schedule import end_epoch
from benchmark.training.trainer import COMPLETED, DIVERGED, EARLY_STOPPED, FoldResult, seed_everything
from benchmark.training.warmup import TrunkWarmup


class PairedBatches:
    """Endless ``(indices_a, indices_b)``: ``m`` items of A and ``m`` of B from each of ``batch_size // m`` classes
    (A's classes balanced as in single-modality training; B's items drawn with replacement when a class has
    fewer than ``m``)."""

    def __init__(self, labels_a: np.ndarray, labels_b: np.ndarray, *, batch_size: int, m_per_class: int,
                 seed: int) -> None:
        self.a = ClassBalancedBatches(labels_a, batch_size=batch_size, m_per_class=m_per_class, seed=seed)
        self.labels_a = np.asarray(labels_a)
        self.members_b = {int(c): np.flatnonzero(labels_b == c) for c in np.unique(labels_b)}
        self.m = m_per_class
        self.rng = np.random.default_rng([seed, 1])

    def __iter__(self) -> Iterator[tuple[list[int], list[int]]]:
        return self

    def __next__(self) -> tuple[list[int], list[int]]:
        ia = next(self.a)
        ib: list[int] = []
        for c in dict.fromkeys(int(x) for x in self.labels_a[ia]):
            members = self.members_b[c]
            ib.extend(int(i) for i in self.rng.choice(members, size=self.m, replace=len(members) < self.m))
        return ia, ib


def make_two_tower_optimizer(model: TwoTowerModel, loss: CrossModalLoss, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """Tower A's trunk (``lr_trunk``), both embedders (``lr_embedder``), the loss's own parameters."""
    trunk = [p for p in model.tower_a.trunk.parameters() if p.requires_grad]
    trunk_ids = {id(p) for p in trunk}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in trunk_ids]
    groups = [{"params": trunk, "lr": cfg.lr_trunk, "name": "trunk"},
              {"params": rest, "lr": cfg.lr_embedder, "name": "embedder"}]
    groups += loss.optimizer_groups(cfg.lr_embedder, cfg.loss_weight_decay)
    return OPTIMIZERS[cfg.optimizer]([g for g in groups if g["params"]], cfg)


def train_two_tower_fold(*, model: TwoTowerModel, loss: CrossModalLoss, train_a: TensorSet, train_b: TensorSet,
                         val_a: TensorSet, val_b: TensorSet, cfg: TrainingConfig, device: torch.device, seed: int,
                         m_per_class: int, warmup_epochs: int = 0, desc: str = "fold", progress: bool = True,
                         heartbeat: Optional[Callable[[], None]] = None,
                         on_validation: Optional[Callable[[int, int, float], None]] = None,
                         ) -> tuple[TwoTowerModel, FoldResult]:
    """Train ``model`` with ``loss`` on the fold's paired training items; return the best-validation model and
    the result (see ``benchmark.training.trainer.train_fold`` for the callbacks)."""
    seed_everything(seed)
    model = model.to(device)
    loss.to(device)
    optimizer = make_two_tower_optimizer(model, loss, cfg)
    batches = PairedBatches(train_a.labels, train_b.labels, batch_size=cfg.batch_size, m_per_class=m_per_class,
                            seed=seed)
    views = np.random.default_rng([seed, 2])
    best = BestCheckpoint(model)
    warmup = TrunkWarmup(model.tower_a.trunk, warmup_epochs)
    bar = FoldProgress(cfg.max_epochs * cfg.iterations_per_epoch, desc, progress)
    status, iteration, curve = COMPLETED, 0, []
    value = None
    try:
        for epoch in range(1, cfg.max_epochs + 1):
            model.train()
            loss.train()
            warmup.start_epoch(epoch)
            for _ in range(cfg.iterations_per_epoch):
                ia, ib = next(batches)
                xa = train_a.batch(ia, views) if isinstance(train_a, ViewSet) else train_a.rows(ia)
                ya = torch.as_tensor(train_a.labels[ia], device=device)
                yb = torch.as_tensor(train_b.labels[ib], device=device)
                value = loss(model.embed_a(xa.to(device)), ya, model.embed_b(train_b.rows(ib).to(device)), yb)
                if loss_diverged(value):
                    value = None
                    break
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                iteration += 1
                bar.step(iteration, value, best.value)
            if value is None:
                status = DIVERGED
                break
            _, stop = end_epoch(epoch, iteration, value, cfg=cfg, curve=curve, best=best, bar=bar,
                                validate=lambda: validation_map_at_r(model, val_a, val_b, device=device,
                                                                     batch_size=cfg.eval_batch_size),
                                on_validation=on_validation, heartbeat=heartbeat)
            if stop:
                status = EARLY_STOPPED
                break
    finally:
        bar.close()
        warmup.restore()
    best.restore()
    model.eval()
    return model, FoldResult(best.score, best.epoch, status, iteration, curve)
