"""The protocol's train and eval image transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from benchmark.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    imagenet_eval_transform,
    imagenet_train_transform,
)
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


def _photo(seed: int, size=(50, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize("make", [imagenet_train_transform, imagenet_eval_transform])
def test_same_floats_as_the_torchvision_pipeline(make):
    transform = make(24, 28)
    reference = T.Compose(transform.transforms)
    assert repr(transform) == repr(reference)  # the frozen regime's cache key is unchanged
    for seed in range(5):
        image = _photo(seed)
        torch.manual_seed(seed)
        expected = reference(image)
        torch.manual_seed(seed)
        assert torch.equal(transform(image), expected)


def test_a_batch_finished_at_once_equals_its_images_finished_one_by_one():
    transform = imagenet_train_transform(24, 28)
    torch.manual_seed(0)
    pixels = torch.stack([transform.pixels(_photo(seed)) for seed in range(6)])
    assert pixels.dtype == torch.uint8 and pixels.shape == (6, 3, 24, 24)
    batch = transform.finish(pixels)
    assert batch.dtype == torch.float32
    assert torch.equal(batch, torch.stack([transform.finish(p) for p in pixels]))
    assert torch.equal(batch[2], T.Normalize(IMAGENET_MEAN, IMAGENET_STD)(pixels[2].float() / 255))
