"""The optimizers a fold can train with: the training layer's table of names and their construction."""

from __future__ import annotations

from typing import Callable

import torch

from benchmark.config import TrainingConfig

#: ``training.optimizer`` name -> ``build(param_groups, cfg)``; the default lr is the embedder's.
OPTIMIZERS: dict[str, Callable[[list, TrainingConfig], torch.optim.Optimizer]] = {
    "rmsprop": lambda groups, cfg: torch.optim.RMSprop(groups, lr=cfg.lr_embedder, momentum=cfg.momentum,
                                                       weight_decay=cfg.weight_decay),
    "adam": lambda groups, cfg: torch.optim.Adam(groups, lr=cfg.lr_embedder, weight_decay=cfg.weight_decay),
    "sgd": lambda groups, cfg: torch.optim.SGD(groups, lr=cfg.lr_embedder, momentum=cfg.momentum,
                                               weight_decay=cfg.weight_decay),
}


def build_optimizer(groups: list, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` over ``groups`` (names checked when the config was assembled)."""
    return OPTIMIZERS[cfg.optimizer](groups, cfg)
