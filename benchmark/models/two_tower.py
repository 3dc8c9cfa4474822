"""Two-tower models for cross-modal retrieval: d(x, y) = d(f_θ1(x), g_θ2(y)).

Tower A is the harness's usual model for modality A (trunk + embedder; a cached trunk in the frozen
regime), tower B a ``VectorTower`` for modality B's vectors (attributes, descriptions, a text tower's
features): one Linear layer, or with ``hidden > 0`` an MLP ``Linear -> ReLU -> Linear`` of that width
(``model.tower_hidden``). Both towers end in the same ``embedding_dim`` and both train.
"""

from __future__ import annotations

import torch
from torch import nn


class VectorTower(nn.Module):
    """``in_dim`` -> ``embedding_dim``: Linear, or an MLP with one hidden layer of ``hidden`` units."""

    def __init__(self, in_dim: int, embedding_dim: int, hidden: int = 0) -> None:
        super().__init__()
        if hidden > 0:
            self.net: nn.Module = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, embedding_dim))
        else:
            self.net = nn.Linear(in_dim, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class TwoTowerModel(nn.Module):
    """``tower_a`` (a ``TrunkModel``: its trunk gets the trunk's learning rate) and ``tower_b``."""

    def __init__(self, tower_a: nn.Module, tower_b: nn.Module) -> None:
        super().__init__()
        self.tower_a, self.tower_b = tower_a, tower_b

    def embed_a(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower_a(x)

    def embed_b(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower_b(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - a two-tower model embeds per modality
        raise TypeError("a TwoTowerModel embeds each modality with embed_a or embed_b")
