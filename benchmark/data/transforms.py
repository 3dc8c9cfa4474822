"""Image transforms of the benchmark protocol (torchvision): ImageNet-style train and eval pipelines.

Train: Resize 256 -> RandomResizedCrop 227 (scale 0.16-1, ratio 0.75-1.33) -> horizontal flip.
Eval: Resize 256 -> CenterCrop 227. Both end with ToTensor and ImageNet mean/std normalisation.
"""

from __future__ import annotations

from torchvision import transforms as T

from benchmark.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: RandomResizedCrop's area and aspect-ratio ranges in the reference code.
CROP_SCALE = (0.16, 1.0)
CROP_RATIO = (0.75, 1.33)


def _check_sizes(image_size: int, resize: int) -> None:
    for key, value in (("image_size", image_size), ("resize", resize)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    if resize < image_size:
        raise ConfigError(f"resize ({resize}) must be at least image_size ({image_size})")


def imagenet_train_transform(image_size: int = 227, resize: int = 256) -> T.Compose:
    """PIL image -> normalised ``3 x image_size x image_size`` tensor, with random crop and flip."""
    _check_sizes(image_size, resize)
    return T.Compose([
        T.Resize(resize),
        T.RandomResizedCrop(image_size, scale=CROP_SCALE, ratio=CROP_RATIO),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def imagenet_eval_transform(image_size: int = 227, resize: int = 256) -> T.Compose:
    """PIL image -> normalised ``3 x image_size x image_size`` tensor (resize, then centre crop)."""
    _check_sizes(image_size, resize)
    return T.Compose([
        T.Resize(resize),
        T.CenterCrop(image_size),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
