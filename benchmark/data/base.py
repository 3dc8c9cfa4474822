"""Image collections and the dataset object every loader returns.

A loader (CUB, Cars196, SOP, In-shop, a user's folder or CSV, the built-in dataset) returns a
``DataSource``: the images of the training classes (train + validation, split into folds later
by ``benchmark.data.splits``), and those of the test classes, either as one set evaluated against
itself or, for In-shop, as a query set and a gallery set.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from benchmark.errors import DatasetError

Transform = Callable[[object], torch.Tensor]


class BatchTransform:
    """A tensor transform (``3 x H x W`` floats in [0, 1] -> the model's input) that also maps whole batches.

    ``batch(x, generator)`` maps ``B x 3 x H x W`` (on any device) in a few tensor operations, drawing the
    random parameters of all ``B`` images at once from ``generator`` (a CPU ``torch.Generator``): the
    same augmentations with the same distribution as calling the transform on each image, not the same draws.
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def batch(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover


class ImageSet(torch.utils.data.Dataset):
    """Labelled images. ``self[i]`` is ``(transform(image), label, i)``.

    ``labels`` are the dataset's own class ids (integers, not necessarily contiguous).
    """

    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, i: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def subset(self, indices: Sequence[int]) -> "ImageSet":
        raise NotImplementedError  # pragma: no cover

    def with_transform(self, transform: Optional[Transform]) -> "ImageSet":
        raise NotImplementedError  # pragma: no cover

    def fingerprint(self) -> str:
        """A digest of the images and labels (part of the frozen regime's cache key)."""
        raise NotImplementedError  # pragma: no cover


#: Pixel modes converted by PIL's own RGB conversion (CMYK without a colour profile: the plain formula).
PLAIN_MODES = ("RGB", "1", "L", "CMYK", "YCbCr", "LAB", "HSV", "RGBX")
#: Modes with an alpha channel: composited on a white background (a transparent logo or product photo
#: shows its usual white page, not the black that dropping alpha would leave where the colour is 0).
ALPHA_MODES = ("RGBA", "RGBa", "LA", "PA")
#: 16-bit (and 32-bit integer, as older PIL versions open 16-bit PNGs) grey levels: 0..65535 scaled to
#: 0..255, where PIL's own conversion clips every value above 255 to white.
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
#: Every mode a file image may have; others (e.g. ``F``, floating-point pixels of no fixed range) are refused.
IMAGE_MODES = PLAIN_MODES + ALPHA_MODES + WIDE_MODES + ("P",)


#: Version of ``to_rgb`` (part of a file dataset's fingerprint): 2 scales 16-bit grey and composites alpha on
#: white, where 1 (PIL's ``convert("RGB")``) clipped the one and dropped the other.
RGB_CONVERSION = 2


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as an 8-bit RGB image, converted by its real mode (see ``PLAIN_MODES``, ``ALPHA_MODES``,
    ``WIDE_MODES``; a palette image with a transparent colour counts as one with alpha); ValueError for
    a mode of no known conversion."""
    mode = img.mode
    if mode == "P" and "transparency" in img.info:
        mode = "PA"
    if mode in ALPHA_MODES:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in WIDE_MODES:
        grey = np.asarray(img, dtype=np.float64)
        grey = np.clip(np.rint(np.clip(grey, 0, 65535) / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in PLAIN_MODES or mode == "P":
        return img.convert("RGB")
    raise ValueError(f"pixel mode {img.mode} has no conversion to 8-bit RGB (expected one of {', '.join(IMAGE_MODES)})")


def bomb_message(exc: Exception) -> str:
    """The one line for an image over PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``)."""
    return (f"image too large to decode safely ({str(exc).split(', could be')[0]}; PIL's decompression-bomb "
            f"check); expected a photo-sized image (downscale it, or check that the file is not corrupt)")


class FileImageSet(ImageSet):
    """Images read from files with PIL, converted to RGB by ``to_rgb``. A corrupt file raises ``DatasetError``."""

    def __init__(self, paths: Sequence[str | Path], labels: Sequence[int],
                 transform: Optional[Transform] = None) -> None:
        if len(paths) != len(labels):
            raise DatasetError(f"{len(paths)} image paths but {len(labels)} labels")
        self.paths = [Path(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform

    def load(self, i: int) -> Image.Image:
        path = self.paths[i]
        try:  # (images over the bomb warning's limit were refused by the header check: no filter here, which
            # would change the process's warning filters under the loader's threads)
            with Image.open(path) as img:
                return to_rgb(img)
        except FileNotFoundError:
            raise DatasetError(f"{path}: image file is missing") from None
        except Image.DecompressionBombError as exc:
            raise DatasetError(f"{path}: {bomb_message(exc)}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise DatasetError(f"{path}: corrupt or unreadable image ({exc.__class__.__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from None

    def __getitem__(self, i: int):
        img = self.load(i)
        x = self.transform(img) if self.transform is not None else img
        return x, int(self.labels[i]), i

    def subset(self, indices: Sequence[int]) -> "FileImageSet":
        idx = np.asarray(indices, dtype=np.int64)
        return FileImageSet([self.paths[i] for i in idx], self.labels[idx], self.transform)

    def with_transform(self, transform: Optional[Transform]) -> "FileImageSet":
        return FileImageSet(self.paths, self.labels, transform)

    def fingerprint(self) -> str:
        """Paths, sizes and modification times of the files, the labels (the pixels are not read) and the version
        of ``to_rgb`` (outputs cached from images converted otherwise are not reused)."""
        h = hashlib.sha256(self.labels.tobytes())
        h.update(f"to_rgb v{RGB_CONVERSION}\n".encode())
        for p in self.paths:
            try:
                st = os.stat(p)
                h.update(os.fsencode(p) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(os.fsencode(p) + b"\0missing\n")  # (fsencode: a file name need not be UTF-8)
        return h.hexdigest()


class ArrayImageSet(ImageSet):
    """Images held in memory as a ``uint8`` array ``N x H x W x 3`` (the built-in dataset).

    Items are float tensors ``3 x H x W`` in [0, 1] passed through ``transform`` (a tensor transform).
    """

    def __init__(self, images: np.ndarray, labels: Sequence[int],
                 transform: Optional[Transform] = None) -> None:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise DatasetError(f"expected uint8 images N x H x W x 3, got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise DatasetError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform

    def load(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div_(255.0)

    def rows(self, indices: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        """The images ``indices`` untransformed, ``B x 3 x H x W`` floats in [0, 1] on ``device`` (one indexing
        operation; the ``uint8`` pixels are what travels to the device)."""
        pixels = torch.from_numpy(self.images[np.asarray(indices, dtype=np.int64)]).to(device)
        return pixels.permute(0, 3, 1, 2).contiguous().float().div_(255.0)

    def __getitem__(self, i: int):
        x = self.load(i)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i]), i

    def subset(self, indices: Sequence[int]) -> "ArrayImageSet":
        idx = np.asarray(indices, dtype=np.int64)
        return ArrayImageSet(self.images[idx], self.labels[idx], self.transform)

    def with_transform(self, transform: Optional[Transform]) -> "ArrayImageSet":
        return ArrayImageSet(self.images, self.labels, transform)

    def fingerprint(self) -> str:
        h = hashlib.sha256(str(self.images.shape).encode())
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.tobytes())
        return h.hexdigest()


@dataclass
class DataSource:
    """One benchmark dataset, split into training classes and test classes by its standard rule.

    ``train`` holds every image of the training classes (cross-validation folds are made from
    it). For a dataset evaluated test-set-against-itself ``test`` is set; for a query/gallery
    dataset (In-shop) ``query`` and ``gallery`` are set instead (``test`` is their union).
    ``train_transform``/``eval_transform`` turn a loaded image into the model's input.
    """

    name: str
    train: ImageSet
    test: ImageSet
    train_transform: Transform
    eval_transform: Transform
    query: Optional[ImageSet] = None
    gallery: Optional[ImageSet] = None
    #: Side information a method or report may use (e.g. the built-in dataset's context ids).
    info: dict = field(default_factory=dict)

    @property
    def has_query_gallery(self) -> bool:
        return self.query is not None and self.gallery is not None
