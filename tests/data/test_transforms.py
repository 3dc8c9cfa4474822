"""The protocol's train and eval image transforms."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from benchmark.data.transforms import imagenet_eval_transform, imagenet_train_transform
from benchmark.errors import ConfigError


def test_reference_pipeline():
    train = imagenet_train_transform().transforms
    assert [type(t) for t in train] == [T.Resize, T.RandomResizedCrop, T.RandomHorizontalFlip, T.ToTensor,
                                        T.Normalize]
    assert train[0].size == 256 and train[1].size == (227, 227)
    assert train[1].scale == (0.16, 1.0) and train[1].ratio == (0.75, 1.33)
    evaluation = imagenet_eval_transform().transforms
    assert [type(t) for t in evaluation] == [T.Resize, T.CenterCrop, T.ToTensor, T.Normalize]
    assert evaluation[1].size == (227, 227)


def test_output_shape_and_determinism():
    image = Image.new("RGB", (50, 30), (200, 100, 50))
    x = imagenet_eval_transform(24, 28)(image)
    assert x.shape == (3, 24, 24) and x.dtype == torch.float32
    assert torch.equal(x, imagenet_eval_transform(24, 28)(image))
    assert imagenet_train_transform(24, 28)(image).shape == (3, 24, 24)


@pytest.mark.parametrize("image_size, resize", [(0, 28), (24, 20), (24.0, 28)])
def test_bad_sizes(image_size, resize):
    with pytest.raises(ConfigError):
        imagenet_eval_transform(image_size, resize)
