"""InputRenormalisation: the harness's ImageNet-normalised RGB -> the scale, order and statistics weights expect."""

from __future__ import annotations

import torch

from benchmark.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from benchmark.models.input_norm import InputRenormalisation

MEAN, STD = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_rgb_to_other_statistics():
    rgb = torch.rand(2, 3, 5, 5)
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # CLIP's
    out = InputRenormalisation(mean, std)((rgb - MEAN) / STD)
    expected = (rgb - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(out, expected, atol=1e-5)


def test_bgr_on_a_0_to_255_scale():
    rgb = torch.rand(2, 3, 5, 5)
    layer = InputRenormalisation((104.0, 117.0, 128.0), (1.0, 1.0, 1.0), max_value=255.0, bgr=True)
    expected = rgb[:, [2, 1, 0]] * 255 - torch.tensor([104.0, 117.0, 128.0]).view(1, 3, 1, 1)
    assert torch.allclose(layer((rgb - MEAN) / STD), expected, atol=1e-3)
    assert "bgr=True" in repr(layer)  # the frozen regime's cache key includes the architecture's repr


def test_identity_only_for_imagenets_own_statistics():
    assert InputRenormalisation(IMAGENET_MEAN, IMAGENET_STD).is_identity()
    assert not InputRenormalisation(IMAGENET_MEAN, IMAGENET_STD, bgr=True).is_identity()
    assert not InputRenormalisation((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).is_identity()
