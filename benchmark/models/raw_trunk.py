"""The raw trunk: a trunk's pooled output as it is, with no embedder (the leaderboards' "Raw trunk" row).

``RawTrunk(trunk)`` returns ``trunk(x)`` (the trunk's own pooling: global average pooling, a ViT's token
as its timm model pools it) for an image trunk, and the global average of the cached map for a trunk on
cached outputs (``CachedTrunk``: its grid pooling feeds the embedder, the raw trunk is the pooled vector),
which for a ``features`` dataset is the features as given. Nothing is trained or projected.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark.models.cached_trunk import CachedTrunk
from benchmark.models.trunks import Trunk


class RawTrunk(nn.Module):
    """``trunk``'s pooled output (see the module docstring); always in eval mode."""

    def __init__(self, trunk: Trunk) -> None:
        super().__init__()
        self.trunk = trunk.eval()

    @property
    def out_dim(self) -> int:
        return self.trunk.channels if isinstance(self.trunk, CachedTrunk) else self.trunk.out_dim

    def train(self, mode: bool = True) -> "RawTrunk":
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.trunk, CachedTrunk):
            fmap = self.trunk.feature_map(x)
            return fmap.mean(dim=(2, 3)) if fmap.dim() == 4 else fmap.flatten(1)
        return self.trunk(x)
