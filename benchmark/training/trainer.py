"""Training one fold: class-balanced batches, periodic validation MAP@R, early stopping, best checkpoint.

The trainer knows nothing about any particular loss: it calls the ``Method`` hooks
(``configure_model``, ``training_step``, ``on_epoch_start``, ``batch_sampler``,
``optimizer_groups``). In the frozen regime ``train_set`` is a ``ViewSet`` of cached trunk outputs and a
batch is one indexing operation (a random view per sample); otherwise images are loaded and transformed.
A non-finite loss ends the fold with status ``diverged`` and the best
checkpoint seen so far; it is not a crash.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.config import TrainingConfig
from benchmark.data.base import ImageSet
from benchmark.evaluation.embed import embed
from benchmark.evaluation.metrics import compute_metrics
from benchmark.methods.base import Method
from benchmark.training.batch_loader import training_batches
from benchmark.training.samplers import ClassBalancedBatches

COMPLETED, EARLY_STOPPED, DIVERGED = "completed", "early_stopped", "diverged"


@dataclass
class TrainState:
    """What ``Method.on_epoch_start`` may look at."""

    model: nn.Module
    train_set: ImageSet
    train_eval_set: ImageSet
    device: torch.device
    seed: int
    cfg: TrainingConfig
    epoch: int = 0
    iteration: int = 0

    def embed_training_set(self) -> np.ndarray:
        """Embeddings of the fold's training images (eval transform, eval mode)."""
        return embed(self.model, self.train_eval_set, device=self.device, batch_size=self.cfg.eval_batch_size,
                     num_workers=self.cfg.num_workers)


@dataclass
class FoldResult:
    """Outcome of one fold: best validation MAP@R, where it was reached, the curve and the status."""

    best_value: float
    best_epoch: int
    status: str
    iterations: int
    #: (epoch, iteration, validation MAP@R) at every validation.
    curve: list = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed torch and numpy for one fold (the batch sampler has its own generator)."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def make_optimizer(model: nn.Module, method: Method, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """Parameter groups: trunk, embedder (and any other head the method added), the method's own."""
    trunk = [p for p in model.trunk.parameters() if p.requires_grad] if hasattr(model, "trunk") else []
    trunk_ids = {id(p) for p in trunk}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in trunk_ids]
    groups = [{"params": trunk, "lr": cfg.lr_trunk, "name": "trunk"},
              {"params": rest, "lr": cfg.lr_embedder, "name": "embedder"}]
    groups += method.optimizer_groups(cfg.lr_embedder, cfg.weight_decay)
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr_embedder, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr_embedder, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr_embedder, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def validate(model: nn.Module, val_set: ImageSet, device: torch.device, cfg: TrainingConfig) -> float:
    """MAP@R of the validation classes against themselves."""
    emb = embed(model, val_set, device=device, batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers)
    if not np.all(np.isfinite(emb)):
        return 0.0
    return compute_metrics(emb, val_set.labels)["map_at_r"]


def train_fold(*, model: nn.Module, method: Method, train_set: ImageSet, train_eval_set: ImageSet,
               val_set: ImageSet, cfg: TrainingConfig, device: torch.device, seed: int, m_per_class: int,
               warmup_epochs: int = 0, desc: str = "fold", progress: bool = True,
               heartbeat: Optional[Callable[[], None]] = None,
               on_validation: Optional[Callable[[int, int, float], None]] = None) -> tuple[nn.Module, FoldResult]:
    """Train ``model`` with ``method`` on ``train_set``; return the best-validation model and the result.

    ``train_set`` carries the training transform, ``train_eval_set`` the same images with the
    evaluation transform (for methods that embed the training set), ``val_set`` the validation
    classes with the evaluation transform. ``heartbeat`` is called after every epoch.
    ``on_validation(epoch, iteration, value)`` is called right after every validation (the best
    checkpoint already updated); whatever it raises (e.g. ``optuna.TrialPruned``) ends the fold and
    propagates, the data loader cleaned up.
    """
    seed_everything(seed)
    model = method.configure_model(model).to(device)
    method.to(device)
    optimizer = make_optimizer(model, method, cfg)
    labels = train_set.labels
    batches = method.batch_sampler(labels, batch_size=cfg.batch_size, m_per_class=m_per_class, seed=seed)
    own_sampler = batches is not None  # it may follow training as it goes: nothing may read ahead of it
    if batches is None:
        batches = ClassBalancedBatches(labels, batch_size=cfg.batch_size, m_per_class=m_per_class, seed=seed)
    stream = training_batches(train_set, batches, seed=seed, num_workers=0 if own_sampler else cfg.num_workers,
                              pin_memory=device.type == "cuda")
    state = TrainState(model=model, train_set=train_set, train_eval_set=train_eval_set, device=device,
                       seed=seed, cfg=cfg)

    trunk_trainable = [p.requires_grad for p in model.trunk.parameters()] if hasattr(model, "trunk") else []
    # Checkpoints are chosen among trained epochs only (the untrained model is the "Pretrained"
    # row); a fold that diverges before its first validation keeps its initial weights and scores 0.
    best_value = -math.inf
    best_state = copy.deepcopy(model.state_dict())
    best_epoch, status, iteration = 0, COMPLETED, 0
    curve: list = []
    total = cfg.max_epochs * cfg.iterations_per_epoch
    # per-fold bars only on a terminal (disable=None): logs and CI output keep the overall bar alone
    bar = tqdm(total=total, desc=desc, disable=None if progress else True, leave=False, dynamic_ncols=True)
    try:
        for epoch in range(1, cfg.max_epochs + 1):
            state.epoch, state.iteration = epoch, iteration
            model.train()
            method.train()
            if warmup_epochs and hasattr(model, "trunk"):  # warm-up: the trunk frozen, the head trained
                for p, trainable in zip(model.trunk.parameters(), trunk_trainable):
                    p.requires_grad_(trainable and epoch > warmup_epochs)
            method.on_epoch_start(epoch, state)
            model.train()
            for _ in range(cfg.iterations_per_epoch):
                x, y, ind = (t.to(device, non_blocking=True) for t in next(stream))
                loss = method.training_step(model, x, y, ind)
                if not torch.isfinite(loss):
                    status = DIVERGED
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                iteration += 1
                bar.update(1)
                if iteration % 10 == 0:
                    bar.set_postfix(loss=f"{loss.item():.4f}", best_val=f"{max(best_value, 0.0):.4f}")
            if status == DIVERGED:
                break
            if epoch % cfg.val_interval == 0 or epoch == cfg.max_epochs:
                value = validate(model, val_set, device, cfg)
                curve.append((epoch, iteration, value))
                if value > best_value:
                    best_value, best_epoch = value, epoch
                    best_state = copy.deepcopy(model.state_dict())
                if on_validation is not None:
                    on_validation(epoch, iteration, value)
                bar.set_postfix(loss=f"{loss.item():.4f}", best_val=f"{best_value:.4f}")
            if heartbeat is not None:
                heartbeat()
            if epoch - best_epoch >= cfg.patience and epoch < cfg.max_epochs:
                status = EARLY_STOPPED
                break
    finally:
        bar.close()
        del stream  # ends the loader's workers
        for p, trainable in zip(model.trunk.parameters() if hasattr(model, "trunk") else [], trunk_trainable):
            p.requires_grad_(trainable)
    model.load_state_dict(best_state)
    model.eval()
    if not math.isfinite(best_value):  # no validation happened (diverged at once)
        best_value = 0.0
    return model, FoldResult(best_value, best_epoch, status, iteration, curve)
