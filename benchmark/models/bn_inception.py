"""BN-Inception (Ioffe & Szegedy 2015), the reality check's trunk, with the weights its code used.

The reality-check code took BN-Inception from the ``pretrainedmodels`` package (a port of the
Caffe model): weights file ``bn_inception-52deb4733.pth``, inputs in BGR order on the 0..255 scale
minus the per-channel mean (104, 117, 128), std 1. ``BNInception`` is that architecture written
here, with the port's parameter names and shapes (``conv1_7x7_s2``, ``inception_3a_1x1_bn``, ...), so
the file's state dict loads strictly; its first layer converts the harness's ImageNet-normalised RGB
input to the port's scale. Its pooled output is the 1024-d average of the last map (the port's
``global_pool`` at 224 x 224); the port's classifier (``last_linear``) is read from the file and dropped.

The weights are read from ``model.weights`` when given, else from torch's hub cache
(``torch.hub.get_dir()/checkpoints/bn_inception-52deb4733.pth``, where ``pretrainedmodels`` itself keeps
it); nothing is downloaded. ``split_last_stage`` cuts before inception_5a (the frozen regime's
``before_last``: 5a and 5b then train on the cached 4e outputs).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import ConfigError
from benchmark.models.input_norm import InputRenormalisation
from benchmark.models.names import check_weights_file
from benchmark.models.trunk_base import Trunk, TrunkBuilder, register_trunk

WEIGHTS_FILE = "bn_inception-52deb4733.pth"
#: Where the ``pretrainedmodels`` port publishes the file (named in the message when it is missing).
WEIGHTS_URL = "http://data.lip6.fr/cadene/pretrainedmodels/" + WEIGHTS_FILE
#: The port's input convention (``pretrained_settings['bninception']['imagenet']``).
PORT_MEAN, PORT_STD, PORT_RANGE = (104.0, 117.0, 128.0), (1.0, 1.0, 1.0), 255.0
#: The port's classifier, present in the file, not in the trunk.
HEAD_KEYS = ("last_linear.weight", "last_linear.bias")


@dataclass(frozen=True)
class Mixed:
    """An inception block: 1x1 | 3x3 (after a 1x1 reduce) | two 3x3 (after a reduce) | pool + 1x1 projection.

    A ``stride2`` block (3c, 4e) has no 1x1 branch and no projection: its 3x3 and second double-3x3
    convolutions have stride 2 and its pool is a stride-2 max pool. 5b's pool is a max pool, the
    others' an average pool.
    """

    name: str
    cin: int
    c1x1: int
    c3x3_reduce: int
    c3x3: int
    cdouble_reduce: int
    cdouble: int
    cproj: int = 0
    pool: str = "avg"
    stride2: bool = False

    @property
    def cout(self) -> int:
        pooled = self.cin if self.stride2 else self.cproj
        return self.c1x1 + self.c3x3 + self.cdouble + pooled

    def convs(self) -> list[tuple[str, int, int, int, int]]:
        """``(name, in, out, kernel, stride)`` of every convolution (each is followed by ``<name>_bn``)."""
        p, s = f"inception_{self.name}_", 2 if self.stride2 else 1
        convs = [(p + "1x1", self.cin, self.c1x1, 1, 1)] if self.c1x1 else []
        convs += [(p + "3x3_reduce", self.cin, self.c3x3_reduce, 1, 1), (p + "3x3", self.c3x3_reduce, self.c3x3, 3, s),
                  (p + "double_3x3_reduce", self.cin, self.cdouble_reduce, 1, 1),
                  (p + "double_3x3_1", self.cdouble_reduce, self.cdouble, 3, 1),
                  (p + "double_3x3_2", self.cdouble, self.cdouble, 3, s)]
        if self.cproj:
            convs.append((p + "pool_proj", self.cin, self.cproj, 1, 1))
        return convs


#: The stem's convolutions (name, in, out, kernel, stride); each is followed by BatchNorm and ReLU.
STEM = (("conv1_7x7_s2", 3, 64, 7, 2), ("conv2_3x3_reduce", 64, 64, 1, 1), ("conv2_3x3", 64, 192, 3, 1))
BLOCKS = (
    Mixed("3a", 192, 64, 64, 64, 64, 96, cproj=32),
    Mixed("3b", 256, 64, 64, 96, 64, 96, cproj=64),
    Mixed("3c", 320, 0, 128, 160, 64, 96, stride2=True),
    Mixed("4a", 576, 224, 64, 96, 96, 128, cproj=128),
    Mixed("4b", 576, 192, 96, 128, 96, 128, cproj=128),
    Mixed("4c", 576, 160, 128, 160, 128, 160, cproj=128),
    Mixed("4d", 608, 96, 128, 192, 160, 192, cproj=128),
    Mixed("4e", 608, 0, 128, 192, 192, 256, stride2=True),
    Mixed("5a", 1056, 352, 192, 320, 160, 224, cproj=128),
    Mixed("5b", 1024, 352, 192, 320, 192, 224, cproj=128, pool="max"),
)
#: Blocks of the last stage (the part that trains in the frozen regime's ``before_last`` cut).
LAST_STAGE = ("5a", "5b")


class BNInceptionLayers(nn.Module):
    """The convolutions and BatchNorms of some of BN-Inception's parts, under the port's flat names.

    ``stem`` says whether the stem runs first; ``blocks`` are then applied in order. ``shared`` takes
    the layers from another instance instead of creating them (a split trunk shares its weights).
    """

    def __init__(self, *, stem: bool, blocks: tuple[Mixed, ...],
                 shared: Optional["BNInceptionLayers"] = None) -> None:
        super().__init__()
        self.stem, self.blocks = stem, tuple(blocks)
        convs = list(STEM) if stem else []
        for block in self.blocks:
            convs += block.convs()
        for name, cin, cout, k, s in convs:
            if shared is not None:
                self.add_module(name, getattr(shared, name))
                self.add_module(name + "_bn", getattr(shared, name + "_bn"))
            else:
                self.add_module(name, nn.Conv2d(cin, cout, k, stride=s, padding=k // 2))
                self.add_module(name + "_bn", nn.BatchNorm2d(cout))

    def extra_repr(self) -> str:
        return f"stem={self.stem}, blocks={[b.name for b in self.blocks]}"

    def _cbr(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.relu(getattr(self, name + "_bn")(getattr(self, name)(x)))

    def _mixed(self, b: Mixed, x: torch.Tensor) -> torch.Tensor:
        p = f"inception_{b.name}_"
        out = [self._cbr(p + "1x1", x)] if b.c1x1 else []
        out.append(self._cbr(p + "3x3", self._cbr(p + "3x3_reduce", x)))
        double = self._cbr(p + "double_3x3_reduce", x)
        out.append(self._cbr(p + "double_3x3_2", self._cbr(p + "double_3x3_1", double)))
        if b.stride2:
            out.append(F.max_pool2d(x, 3, stride=2, ceil_mode=True))
        else:
            pooled = (F.max_pool2d(x, 3, stride=1, padding=1, ceil_mode=True) if b.pool == "max"
                      else F.avg_pool2d(x, 3, stride=1, padding=1, ceil_mode=True, count_include_pad=True))
            out.append(self._cbr(p + "pool_proj", pooled))
        return torch.cat(out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem:
            x = F.max_pool2d(self._cbr("conv1_7x7_s2", x), 3, stride=2, ceil_mode=True)
            x = self._cbr("conv2_3x3", self._cbr("conv2_3x3_reduce", x))
            x = F.max_pool2d(x, 3, stride=2, ceil_mode=True)
        for block in self.blocks:
            x = self._mixed(block, x)
        return x


class BNInception(Trunk):
    """BN-Inception without its classifier: ``feature_map`` is inception_5b's 1024-channel map."""

    def __init__(self) -> None:
        super().__init__()
        self.input_transform = InputRenormalisation(PORT_MEAN, PORT_STD, max_value=PORT_RANGE, bgr=True)
        self.net = BNInceptionLayers(stem=True, blocks=BLOCKS)
        self.out_dim = BLOCKS[-1].cout

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_transform(x))

    def split_last_stage(self) -> tuple[nn.Module, nn.Module]:
        first = tuple(b for b in BLOCKS if b.name not in LAST_STAGE)
        last = tuple(b for b in BLOCKS if b.name in LAST_STAGE)
        before = nn.Sequential(self.input_transform, BNInceptionLayers(stem=True, blocks=first, shared=self.net))
        return before, BNInceptionLayers(stem=False, blocks=last, shared=self.net)

    def load_port_state_dict(self, state: dict, source: str) -> None:
        """Load the port's state dict (its classifier dropped) strictly into the layers; ``source`` names it."""
        if not isinstance(state, dict):
            raise ConfigError(f"{source} holds a {type(state).__name__}, not a BN-Inception state dict")
        state = {k: v for k, v in state.items() if k not in HEAD_KEYS}
        expected = self.net.state_dict()
        # an old file has no num_batches_tracked: load_state_dict then keeps the fresh counters
        missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in expected]
        misshapen = [k for k in state if k in expected and not (
            isinstance(state[k], torch.Tensor) and state[k].shape == expected[k].shape)]
        if missing or unexpected or misshapen:
            raise ConfigError(f"{source} is not the pretrainedmodels BN-Inception state dict: {len(missing)} missing "
                              f"keys {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, "
                              f"{len(misshapen)} of another shape {misshapen[:3]}")
        self.net.load_state_dict(state, strict=True)


def hub_weights_path() -> Path:
    """Where torch's hub cache keeps the file (``pretrainedmodels`` downloads it there)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def find_weights(weights: Optional[str]) -> Path:
    """The weights file: ``weights`` (``model.weights``) when given, else the hub cache's; ConfigError if absent."""
    if weights:
        return check_weights_file(weights, "model.weights")
    path = hub_weights_path()
    if not path.is_file():
        raise ConfigError(f"BN-Inception weights not found: expected {WEIGHTS_FILE} in {path.parent} (torch's hub "
                          f"cache); download {WEIGHTS_URL} into that folder, or name the file with model.weights, "
                          f"or set model.pretrained: false for random weights")
    return path


def bn_inception(*, pretrained: bool, weights: Optional[str] = None) -> BNInception:
    """The trunk, with the port's weights read from ``find_weights(weights)`` when ``pretrained``."""
    trunk = BNInception()
    if pretrained:
        path = find_weights(weights)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            raise ConfigError(f"could not read BN-Inception weights from {path} ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        trunk.load_port_state_dict(state, str(path))
    return trunk


register_trunk(TrunkBuilder(exact="bn_inception",
                            build=lambda name, *, pretrained, weights=None: bn_inception(pretrained=pretrained,
                                                                                          weights=weights),
                            find_weights=lambda name, weights: find_weights(weights)))
