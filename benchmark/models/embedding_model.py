"""Trunk + embedder: the model every method trains (a method may replace the head)."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.models.trunks import Trunk, freeze_batchnorm


class EmbeddingModel(nn.Module):
    """``embedder(trunk(x))``; the embedder is one Linear layer (no activation) by default.

    With ``freeze_bn`` the trunk's BatchNorm statistics stay frozen in training mode too.
    """

    def __init__(self, trunk: Trunk, embedding_dim: int = 128, freeze_bn: bool = True) -> None:
        super().__init__()
        self.trunk = trunk
        self.embedder: nn.Module = nn.Linear(trunk.out_dim, embedding_dim)
        self.embedding_dim = embedding_dim
        self.freeze_bn = freeze_bn

    def train(self, mode: bool = True) -> "EmbeddingModel":
        super().train(mode)
        if mode and self.freeze_bn:
            freeze_batchnorm(self.trunk)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder(self.trunk(x))
