"""Trunks: the image networks whose pooled features the embedder maps to the embedding.

Every trunk exposes ``feature_map(x)`` (B x C x H x W, for methods that attend over it),
``pool(fmap)`` (B x C) and ``out_dim`` (C). ``build_trunk`` makes any trunk a config names
(``benchmark.models.names``): the small CNN and torchvision's ResNet-50 and GoogLeNet here,
BN-Inception in ``bn_inception``, timm models in ``timm_trunk``: those two depend on the trunk contract
(``trunk_base``) and register their builders there; this module imports them so that they are registered.
ImageNet weights come through torchvision's weight API (they are read from torchvision's cache; nothing here
downloads on its own when offline); BN-Inception's and timm's only from files already on disk.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from benchmark.errors import ConfigError
from benchmark.models.input_norm import InputRenormalisation
from benchmark.models.names import TRUNKS
from benchmark.models.trunk_base import TRUNK_BUILDERS, Trunk, WrappedTrunk, builder_for

# the trunks in their own modules register their builders when imported (they import trunk_base, not this module)
from benchmark.models import bn_inception as _bn_inception  # noqa: F401,E402
from benchmark.models import timm_trunk as _timm_trunk  # noqa: F401,E402

__all__ = ["Trunk", "WrappedTrunk", "SmallCNN", "TorchvisionTrunk", "build_trunk", "check_pretrained_weights",
           "freeze_batchnorm", "TRUNK_BUILDERS"]


class SmallCNN(Trunk):
    """A four-stage CNN for 32 x 32 inputs on a CPU (conv-BN-ReLU per stage, widths w, 2w, 4w, 8w).

    With the default width 16 it has about 0.1 M parameters, 128-d features on a 4 x 4 map, and
    trains at a few tens of batches of 32 per second on two CPU cores.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()

        def stage(cin: int, cout: int, pool: bool) -> nn.Sequential:
            layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(2))
            return nn.Sequential(*layers)

        self.body = nn.Sequential(stage(3, width, True), stage(width, 2 * width, True),
                                  stage(2 * width, 4 * width, True), stage(4 * width, 8 * width, False))
        self.out_dim = 8 * width

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def split_last_stage(self) -> tuple[nn.Module, nn.Module]:
        return self.body[:-1], self.body[-1]


class GoogLeNetInputTransform(InputRenormalisation):
    """ImageNet-normalised input -> the per-channel [-1, 1] scale torchvision's GoogLeNet weights expect."""

    def __init__(self) -> None:
        super().__init__(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


class TorchvisionTrunk(Trunk):
    """ResNet-50 or GoogLeNet (the torchvision stand-in for BN-Inception) without its classifier.

    torchvision's GoogLeNet weights were ported from TensorFlow and expect inputs rescaled from
    ImageNet normalisation to [-1, 1] per channel (``transform_input``, done in its ``forward``).
    The trunk's first layer does the same rescaling (its constants are buffers, so they are part of the
    weights' digest, the frozen regime's cache key, and stay in the frozen part of a split trunk).
    """

    def __init__(self, arch: str, pretrained: bool) -> None:
        import torchvision

        if arch == "resnet50":
            weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V2 if pretrained else None
            net = torchvision.models.resnet50(weights=weights)
        elif arch == "googlenet":
            weights = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1 if pretrained else None
            # with its weights torchvision turns transform_input on; without, it stays off
            net = torchvision.models.googlenet(weights=weights, aux_logits=False, init_weights=not pretrained)
        else:  # pragma: no cover - guarded by build_trunk
            raise ConfigError(f"unknown torchvision trunk {arch!r}")
        super().__init__()
        self._adopt(arch, net)

    @classmethod
    def from_network(cls, arch: str, net: nn.Module) -> "TorchvisionTrunk":
        """The trunk of an existing torchvision ``resnet50`` or ``googlenet`` module (its weights shared)."""
        trunk = cls.__new__(cls)
        Trunk.__init__(trunk)
        trunk._adopt(arch, net)
        return trunk

    def _adopt(self, arch: str, net: nn.Module) -> None:
        self.arch = arch
        if arch == "resnet50":
            self.body = nn.Sequential(*list(net.children())[:-2])  # drop avgpool, fc
            self.out_dim = 2048
            return
        layers = [m for name, m in net.named_children() if name not in ("aux1", "aux2", "avgpool", "dropout", "fc")]
        if getattr(net, "transform_input", False):
            layers.insert(0, GoogLeNetInputTransform())
        self.body = nn.Sequential(*layers)
        self.out_dim = 1024

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def split_last_stage(self) -> tuple[nn.Module, nn.Module]:
        # ResNet-50: layer4; GoogLeNet: maxpool4, inception5a, inception5b
        cut = -1 if self.arch == "resnet50" else -3
        return self.body[:cut], self.body[cut:]


def build_trunk(name: str, *, pretrained: bool, weights: Optional[str] = None) -> Trunk:
    """The trunk ``name`` (one of ``TRUNKS`` or ``timm:<name>``).

    ``small_cnn`` weights are loaded by the caller; ``weights`` (``model.weights``) names the weights file of
    ``bn_inception`` or a timm trunk (default: their caches').
    """
    if name == "small_cnn":
        return SmallCNN()
    builder = builder_for(name)
    if builder is not None:
        return builder.build(name, pretrained=pretrained, weights=weights)
    if name in ("resnet50", "googlenet"):
        try:
            return TorchvisionTrunk(name, pretrained)
        except (RuntimeError, OSError) as exc:  # no cached weights and no network
            raise ConfigError(
                f"could not load ImageNet weights for {name!r} ({exc.__class__.__name__}); put them in "
                f"torchvision's cache ($TORCH_HOME/hub/checkpoints) or set model.pretrained: false") from None
    raise ConfigError(f"unknown trunk {name!r} (expected one of {TRUNKS} or timm:<name>)")


def check_pretrained_weights(name: str, *, pretrained: bool, weights: Optional[str] = None) -> None:
    """Before a run writes anything: the weights file ``build_trunk`` will read is there (else ConfigError).

    For BN-Inception and timm trunks only (torchvision's own cache is checked when the trunk is built).
    """
    if not pretrained:
        return
    builder = builder_for(name)
    if builder is not None:
        builder.find_weights(name, weights)


def freeze_batchnorm(module: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode (frozen running statistics), as the reference did."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
