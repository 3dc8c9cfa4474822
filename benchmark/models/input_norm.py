"""The input a trunk's weights expect, from the harness's ImageNet-normalised RGB images.

Every transform of the harness ends with ``Normalize(IMAGENET_MEAN, IMAGENET_STD)`` on RGB values in
[0, 1]. Weights trained on another scale (GoogLeNet's [-1, 1], BN-Inception's BGR 0..255 minus a mean,
a timm model's own mean and std) see their own scale through ``InputRenormalisation``, the first layer
of such a trunk: ``x -> (max_value * rgb01 - mean) / std``, channels reversed to BGR when asked. Its
constants are buffers, so they are part of the weights' digest (the frozen regime's cache key) and move
with the trunk to its device.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from benchmark.data.transforms import IMAGENET_MEAN, IMAGENET_STD


class InputRenormalisation(nn.Module):
    """ImageNet-normalised RGB -> ``(max_value * rgb01 - mean) / std`` (in BGR order when ``bgr``).

    ``mean`` and ``std`` are given in the target's channel order and on its scale (0..``max_value``).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], *, max_value: float = 1.0,
                 bgr: bool = False) -> None:
        super().__init__()
        src_mean, src_std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        if bgr:
            src_mean, src_std = src_mean.flip(0), src_std.flip(0)
        mean, std = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        # x = (rgb01 - src_mean) / src_std  =>  (max_value * rgb01 - mean) / std = x * scale + shift
        self.register_buffer("scale", (max_value * src_std / std).view(1, 3, 1, 1))
        self.register_buffer("shift", ((max_value * src_mean - mean) / std).view(1, 3, 1, 1))
        self.bgr = bool(bgr)

    def extra_repr(self) -> str:
        return f"bgr={self.bgr}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        return x * self.scale + self.shift

    def is_identity(self) -> bool:
        """True when the target scale is the harness's own (the layer can be left out)."""
        return not self.bgr and bool(torch.allclose(self.scale, torch.ones(())) and
                                     torch.allclose(self.shift, torch.zeros(()), atol=1e-7))
