"""The fold's optimizer: the table of ``training.optimizer`` names, and the trunk, the rest of the model and
the method's own parameters in separate groups."""

from __future__ import annotations

from typing import Callable

import torch

from benchmark.config import TrainingConfig
from benchmark.methods.base import Method
from benchmark.models.embedding_model import TrunkModel

#: ``training.optimizer`` name -> ``build(param_groups, cfg)``; the default lr is the embedder's.
OPTIMIZERS: dict[str, Callable[[list, TrainingConfig], torch.optim.Optimizer]] = {
    "rmsprop": lambda groups, cfg: torch.optim.RMSprop(groups, lr=cfg.lr_embedder, momentum=cfg.momentum,
                                                       weight_decay=cfg.weight_decay),
    "adam": lambda groups, cfg: torch.optim.Adam(groups, lr=cfg.lr_embedder, weight_decay=cfg.weight_decay),
    "sgd": lambda groups, cfg: torch.optim.SGD(groups, lr=cfg.lr_embedder, momentum=cfg.momentum,
                                               weight_decay=cfg.weight_decay),
}


def make_optimizer(model: TrunkModel, method: Method, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """Parameter groups: trunk, embedder (and any other head the method added), the method's own (with
    ``training.loss_weight_decay``; the model's groups take ``training.weight_decay``)."""
    trunk = [p for p in model.trunk.parameters() if p.requires_grad]
    trunk_ids = {id(p) for p in trunk}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in trunk_ids]
    groups = [{"params": trunk, "lr": cfg.lr_trunk, "name": "trunk"},
              {"params": rest, "lr": cfg.lr_embedder, "name": "embedder"}]
    groups += method.optimizer_groups(cfg.lr_embedder, cfg.loss_weight_decay)
    groups = [g for g in groups if g["params"]]
    return OPTIMIZERS[cfg.optimizer](groups, cfg)
