"""The models the trainer trains: a trunk and a head (``TrunkModel``); trunk + embedder is the default one.

``TrunkModel`` is the trainer's contract: ``model.trunk`` is a ``Trunk`` (its parameters get the trunk's
learning rate and are frozen during warm-up), everything else is the head. ``EmbeddingModel`` is the
default head (one Linear embedder); a method that replaces the head (DCML's attentions) builds another
``TrunkModel`` on the same trunk in ``configure_model``.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark.models.trunks import Trunk, freeze_batchnorm


class TrunkModel(nn.Module):
    """A trunk (``self.trunk``) and a head after it.

    With ``freeze_bn`` the trunk's BatchNorm statistics stay frozen in training mode too.
    """

    def __init__(self, trunk: Trunk, *, freeze_bn: bool) -> None:
        super().__init__()
        self.trunk = trunk
        self.freeze_bn = freeze_bn

    def train(self, mode: bool = True) -> "TrunkModel":
        super().train(mode)
        if mode and self.freeze_bn:
            freeze_batchnorm(self.trunk)
        return self


class EmbeddingModel(TrunkModel):
    """``embedder(trunk(x))``; the embedder is one Linear layer (no activation) by default."""

    def __init__(self, trunk: Trunk, embedding_dim: int = 128, freeze_bn: bool = True) -> None:
        super().__init__(trunk, freeze_bn=freeze_bn)
        self.embedder: nn.Module = nn.Linear(trunk.out_dim, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder(self.trunk(x))
