"""The contract between a method (a loss with its hooks) and the trainer.

Every registered method builds a ``Method``: an ``nn.Module`` whose ``forward(embeddings, labels,
indices)`` returns the scalar loss of a batch. Methods that need more than a loss on embeddings
(a different model head, a custom step, a per-epoch refresh) override the hooks below; the trainer
calls them for every method, so a new method never needs a change anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Protocol

import numpy as np
import torch
from torch import nn

from benchmark.models.embedding_model import TrunkModel


@dataclass(frozen=True)
class MethodContext:
    """What a method may need to know about the run when it is built."""

    num_classes: int
    embedding_dim: int
    device: torch.device = torch.device("cpu")


class TrainingView(Protocol):
    """What ``Method.on_epoch_start`` may look at while a fold trains (the trainer's ``TrainState``)."""

    model: nn.Module
    #: The fold's training samples (training transform) and the same samples with the evaluation transform.
    train_set: Any
    train_eval_set: Any
    device: torch.device
    seed: int
    #: The fold's ``TrainingConfig`` (``batch_size``, ``eval_batch_size``, ``num_workers`` ...).
    cfg: Any
    epoch: int
    iteration: int

    def embed_training_set(self) -> np.ndarray:
        """Embeddings of the fold's training samples (evaluation transform, eval mode)."""


class Method(nn.Module):
    """A metric-learning method as the trainer sees it.

    Subclasses implement ``forward`` (the loss on a batch of embeddings). Learnable loss
    parameters (proxies, margins) are ordinary ``nn.Parameter`` s of the module: the trainer puts
    them in their own optimizer group with the learning rate ``loss_lr`` when the method has one.
    """

    #: Learning rate of the method's own parameters (None: they share the embedder's).
    loss_lr: Optional[float] = None

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices: Optional[torch.Tensor] = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # -- hooks with neutral defaults -------------------------------------------------------
    def configure_model(self, model: TrunkModel) -> TrunkModel:
        """Return the model to train (a method may replace the head or wrap the trunk; it stays a ``TrunkModel``)."""
        return model

    def training_step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      indices: torch.Tensor) -> torch.Tensor:
        """Loss of one batch. The default embeds the images and applies ``forward``."""
        return self(model(images), labels, indices)

    def on_epoch_start(self, epoch: int, state: TrainingView) -> None:
        """Called by the trainer before each epoch (cluster refresh, environment inference)."""

    def batch_sampler(self, labels: Any, *, batch_size: int, m_per_class: int,
                      seed: int) -> Optional[Iterator[list[int]]]:
        """An endless iterator of index batches, or None for the trainer's class-balanced batches."""
        return None

    def optimizer_groups(self, default_lr: float, weight_decay: float) -> list[dict]:
        """Parameter groups for the method's own parameters (empty when it has none); ``weight_decay`` is
        theirs (``training.loss_weight_decay``), not the model's."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return []
        lr = self.loss_lr if self.loss_lr is not None else default_lr
        return [{"params": params, "lr": lr, "weight_decay": weight_decay, "name": "loss"}]


class PMLMethod(Method):
    """A pytorch-metric-learning loss, with an optional miner, behind the ``Method`` contract."""

    def __init__(self, loss: nn.Module, miner: Optional[nn.Module] = None,
                 loss_lr: Optional[float] = None) -> None:
        super().__init__()
        self.loss = loss
        self.miner = miner
        self.loss_lr = loss_lr

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.miner is not None:
            tuples = self.miner(embeddings, labels)
            return self.loss(embeddings, labels, tuples)
        return self.loss(embeddings, labels)
