"""Image transforms of the benchmark protocol (torchvision): ImageNet-style train and eval pipelines.

Train: Resize 256 -> RandomResizedCrop 227 (scale 0.16-1, ratio 0.75-1.33) -> horizontal flip.
Eval: Resize 256 -> CenterCrop 227. Both end with ToTensor and ImageNet mean/std normalisation.

Both are ``ImageTransform``s: calling one maps a PIL image to the normalised tensor, as the
torchvision pipeline above would, float for float. A loader may also run it in two stages:
``pixels`` (the PIL steps, ending in the ``uint8`` pixels: the per-image work, in DataLoader
workers, 4x less data between processes than floats) and ``finish`` (float conversion and
normalisation of a whole ``B x 3 x H x W`` batch at once, in the main process or on the device).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision import transforms as T

from benchmark.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: RandomResizedCrop's area and aspect-ratio ranges in the reference code.
CROP_SCALE = (0.16, 1.0)
CROP_RATIO = (0.75, 1.33)


class ImageTransform:
    """PIL image -> ``steps`` -> pixels scaled to [0, 1] -> ``(x - mean) / std``, in two separable stages.

    ``finish`` does what torchvision's ``ToTensor`` and ``Normalize`` do, in the same arithmetic
    (divide by 255, subtract the mean, divide by the std), so ``finish(pixels(image))`` is exactly
    ``Compose(transforms)(image)``, and a batch finished at once equals its images finished one by one.
    """

    def __init__(self, steps: Sequence, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.steps, self.normalisation = list(steps), (tuple(mean), tuple(std))
        self.pixels = T.Compose([*self.steps, T.PILToTensor()])
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    @property
    def transforms(self) -> list:
        """The equivalent torchvision pipeline."""
        return [*self.steps, T.ToTensor(), T.Normalize(*self.normalisation)]

    def finish(self, pixels: torch.Tensor) -> torch.Tensor:
        """``uint8`` pixels ``... x 3 x H x W`` (one image or a batch, on any device) -> normalised floats."""
        x = pixels.float().div_(255.0)
        return x.sub_(self.mean.to(x.device)).div_(self.std.to(x.device))

    def __call__(self, image) -> torch.Tensor:
        return self.finish(self.pixels(image))

    def __repr__(self) -> str:  # the torchvision pipeline's (part of the frozen regime's cache key)
        return repr(T.Compose(self.transforms))


def _check_sizes(image_size: int, resize: int) -> None:
    for key, value in (("image_size", image_size), ("resize", resize)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    if resize < image_size:
        raise ConfigError(f"resize ({resize}) must be at least image_size ({image_size})")


def imagenet_train_transform(image_size: int = 227, resize: int = 256) -> ImageTransform:
    """PIL image -> normalised ``3 x image_size x image_size`` tensor, with random crop and flip."""
    _check_sizes(image_size, resize)
    return ImageTransform([
        T.Resize(resize),
        T.RandomResizedCrop(image_size, scale=CROP_SCALE, ratio=CROP_RATIO),
        T.RandomHorizontalFlip(),
    ])


def imagenet_eval_transform(image_size: int = 227, resize: int = 256) -> ImageTransform:
    """PIL image -> normalised ``3 x image_size x image_size`` tensor (resize, then centre crop)."""
    _check_sizes(image_size, resize)
    return ImageTransform([T.Resize(resize), T.CenterCrop(image_size)])
