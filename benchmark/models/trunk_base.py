"""The trunk contract: the ``Trunk`` base class, ``WrappedTrunk``, and the registry of trunk builders.

A trunk module (``bn_inception``, ``timm_trunk``) depends on this contract and registers its builder here with
``register_trunk``; ``trunks.build_trunk`` looks builders up by name. Nothing here imports a trunk module, so the
dependency runs one way: trunk modules -> contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn


class Trunk(nn.Module):
    """Base class: ``forward`` = ``pool(feature_map(x))``.

    ``out_dim`` is the width of ``pool``'s output, ``channels`` that of ``feature_map``'s (the same
    for global average pooling). ``example_input(size)`` is a zero input of the shape ``feature_map``
    takes (an image batch here; cached trunk outputs for ``CachedTrunk``).
    """

    out_dim: int

    @property
    def label(self) -> str:
        """The trunk's name in messages."""
        return type(self).__name__

    @property
    def channels(self) -> int:
        return self.out_dim

    def example_input(self, size: int) -> torch.Tensor:
        param = next(self.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None else torch.float32
        return torch.zeros(1, 3, size, size, device=device, dtype=dtype)

    def split_last_stage(self) -> tuple[nn.Module, nn.Module]:
        """``(stages before the last, last stage)``: ``feature_map(x) == last(before(x))``."""
        raise NotImplementedError(f"{type(self).__name__} has no stages to split")

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return fmap.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(x))


class WrappedTrunk(Trunk):
    """A trunk around another one (kept as ``.trunk``), delegating ``feature_map``, ``pool`` and ``out_dim``.

    Methods that change the trunk (a new pooling, a frozen trunk) subclass it and override one piece.
    """

    def __init__(self, trunk: Trunk) -> None:
        super().__init__()
        self.trunk = trunk
        self.out_dim = trunk.out_dim

    @property
    def label(self) -> str:
        return self.trunk.label

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk.feature_map(x)

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.trunk.pool(fmap)

    @property
    def channels(self) -> int:
        return self.trunk.channels

    def example_input(self, size: int) -> torch.Tensor:
        return self.trunk.example_input(size)


@dataclass(frozen=True)
class TrunkBuilder:
    """How to build the trunks of one name (``exact``) or of every name under a prefix (``prefix``).

    ``build(name, pretrained=..., weights=...)`` returns the trunk; ``find_weights(name, weights)`` checks,
    before a run writes anything, that the weights file ``build`` will read is on disk (else ConfigError).
    """

    build: Callable[..., Trunk]
    find_weights: Callable[[str, Optional[str]], object]
    exact: Optional[str] = None
    prefix: Optional[str] = None


TRUNK_BUILDERS: list[TrunkBuilder] = []


def register_trunk(builder: TrunkBuilder) -> TrunkBuilder:
    """Add ``builder`` to the registry (once: registering the same name or prefix again is an error)."""
    if (builder.exact is None) == (builder.prefix is None):
        raise ValueError("a trunk builder names exactly one of exact= or prefix=")
    for other in TRUNK_BUILDERS:
        if (other.exact, other.prefix) == (builder.exact, builder.prefix):
            raise ValueError(f"trunk builder {builder.exact or builder.prefix!r} is registered twice")
    TRUNK_BUILDERS.append(builder)
    return builder


def builder_for(name: str) -> Optional[TrunkBuilder]:
    """The registered builder of trunk ``name`` (an exact name first, then a prefix), or None."""
    for builder in TRUNK_BUILDERS:
        if builder.exact == name:
            return builder
    for builder in TRUNK_BUILDERS:
        if builder.prefix is not None and name.startswith(builder.prefix):
            return builder
    return None
