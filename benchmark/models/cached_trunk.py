"""Where the frozen regime cuts the trunk, and the trunk it trains on cached outputs.

``frozen_encoder(trunk, cut, grid)`` is the part of a pretrained trunk that runs once per image (its
outputs are cached on disk by ``benchmark.models.trunk_cache``):

* ``after_last``: the whole trunk; its map is average-pooled to ``grid x grid`` (1 = global pooling);
* ``before_last``: every stage but the last; the last stage then trains, on the cached inputs.

``CachedTrunk`` is the trunk of a frozen-regime model: its inputs are cached tensors
(``C x H x W``), ``feature_map`` applies the trainable last stage when there is one (else returns the
input), and ``pool`` average-pools to ``grid x grid`` and flattens, so that the embedder sees the
spatial layout (``out_dim = channels * grid**2``). Methods that work on the spatial map (DCML's
attention, ProxyNCA++'s re-pooling, the Mahalanobis baseline) get the map from ``feature_map``.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import ConfigError
from benchmark.models.trunks import Trunk

CUTS = ("after_last", "before_last")


class GridPooledEncoder(nn.Module):
    """``adaptive_avg_pool(trunk.feature_map(x), grid)``: the cached value of the ``after_last`` cut."""

    def __init__(self, trunk: Trunk, grid: int) -> None:
        super().__init__()
        self.trunk, self.grid = trunk, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.trunk.feature_map(x)
        return F.adaptive_avg_pool2d(fmap, (min(self.grid, fmap.shape[2]), min(self.grid, fmap.shape[3])))


def frozen_encoder(trunk: Trunk, cut: str, grid: int) -> tuple[nn.Module, Optional[nn.Module]]:
    """``(encoder, last stage or None)``: copies of the trunk's parts, the encoder in eval mode."""
    if cut not in CUTS:
        raise ConfigError(f"config key 'frozen.cut' must be one of {CUTS}, got {cut!r}")
    trunk = copy.deepcopy(trunk)
    if cut == "after_last":
        return GridPooledEncoder(trunk, grid).eval(), None
    try:
        before, last = trunk.split_last_stage()
    except NotImplementedError:
        raise ConfigError(f"config key 'frozen.cut': {trunk.label} supports only after_last (before_last needs a "
                          f"trunk split into stages)") from None
    return before.eval(), last


class CachedTrunk(Trunk):
    """A trunk whose input is a cached trunk output ``input_shape = (C, H, W)`` (see the module docstring)."""

    def __init__(self, input_shape: tuple[int, int, int], *, grid: int, stage: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.grid = int(grid)
        self.stage = stage
        with torch.no_grad():
            fmap = self.feature_map(self.example_input(0))
        self._channels = int(fmap.shape[1])
        self.map_size = (int(fmap.shape[2]), int(fmap.shape[3]))
        self.out_dim = self._channels * min(self.grid, self.map_size[0]) * min(self.grid, self.map_size[1])

    @property
    def channels(self) -> int:
        return self._channels

    def example_input(self, size: int) -> torch.Tensor:
        """A zero cached output (``size`` is ignored: the cache fixes the shape)."""
        param = next(self.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        return torch.zeros(1, *self.input_shape, device=device)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.stage is None else self.stage(x)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        grid = (min(self.grid, fmap.shape[2]), min(self.grid, fmap.shape[3]))
        if tuple(fmap.shape[2:]) != grid:  # a cached map already on the grid is only flattened
            fmap = F.adaptive_avg_pool2d(fmap, grid)
        return fmap.flatten(1)
