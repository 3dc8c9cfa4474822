"""Checks of a loaded file dataset made before any work starts (the loaders check its layout).

``check_file_dataset`` takes a ``DataSource`` of image files and refuses, with a ``DatasetError``
naming the file: an image path that escapes the dataset's root (an absolute path, ``..``, or a
symbolic link resolving outside it; a list file's paths are checked when it is read,
``benchmark.data.lists``), one image file listed twice (in two classes, twice in one
class, or in both the training and the test classes: the test set would hold training images),
a file whose header no image reader accepts (empty, truncated header, not an image), a JPEG file cut
short (one that lacks its end marker is decoded at 1/8 scale), an image over
PIL's decompression-bomb limit, and a pixel mode of no known conversion to RGB (``base.IMAGE_MODES``).

Reading headers costs about 0.1 ms per image from a warm page cache (CUB's 11,788 images: about
1.2 s); images are decoded in full only when training reads them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from benchmark.data.base import IMAGE_MODES, DataSource, FileImageSet, bomb_message
from benchmark.errors import DatasetError


def dataset_root(source: DataSource) -> Path | None:
    """The folder every image of ``source`` must lie in: its root (a list file's relative paths were checked
    against its image root when it was read, and its absolute paths are the user's choice: ``benchmark.data.lists``)."""
    if "root" in source.info:
        return Path(source.info["root"])
    return None


def _parts(source: DataSource) -> list[tuple[str, FileImageSet]]:
    """``(name, image set)`` of the disjoint parts of ``source`` (query and gallery replace test)."""
    names = ("train", "query", "gallery") if source.has_query_gallery else ("train", "test")
    return [(n, getattr(source, n)) for n in names if isinstance(getattr(source, n), FileImageSet)]


def check_inside_root(root: Path, paths: Iterable[Path]) -> None:
    """Every path, with symbolic links resolved, lies inside ``root`` (itself resolved)."""
    real_root = os.path.realpath(root)
    prefix = real_root.rstrip(os.sep) + os.sep
    for p in paths:
        real = os.path.realpath(p)
        if not real.startswith(prefix):
            via = f" (a symbolic link to {real})" if os.path.islink(p) or real != os.path.abspath(p) else ""
            raise DatasetError(f"{p}: image path is outside the dataset root {root}{via}; expected every image "
                               f"inside the root (no absolute paths, '..' or links leading out)")


def check_unique_images(parts: Sequence[tuple[str, FileImageSet]], class_names: Sequence[str] | None = None) -> None:
    """No image file (by its resolved path) appears twice in ``parts``: not in two classes, not twice
    in one class, not in two parts (e.g. train and test). ``class_names[label]`` names a class."""
    def name(label: int) -> str:
        return repr(class_names[label]) if class_names is not None and 0 <= label < len(class_names) else str(label)

    seen: dict[str, tuple[str, int, Path]] = {}
    for part, images in parts:
        for path, label in zip(images.paths, images.labels):
            real = os.path.realpath(path)
            if real in seen:
                first_part, first_label, first_path = seen[real]
                if first_label == label:
                    where = f"twice in class {name(label)}"
                else:
                    where = f"in two classes ({name(first_label)} and {name(int(label))})"
                if first_part != part:
                    where += f", in both the {first_part} and the {part} images"
                same = "" if first_path == path else f" (also as {first_path})"
                raise DatasetError(f"{path}: the same image file is listed {where}{same}; expected each image "
                                   f"once, in one class")
            seen[real] = (part, int(label), path)


def _ends_with_eoi(path: Path) -> bool:
    """True when a JPEG file ends with its end-of-image marker (trailing zero padding allowed); a file cut
    short does not, and is then decoded to tell a truncated file from one with data after the marker."""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 64))
        return f.read().rstrip(b"\0\r\n").endswith(b"\xff\xd9")


def check_image_header(path: Path) -> None:
    """``path`` opens as an image: PIL identifies its format and size (and checks what ``verify`` can),
    its size is under PIL's decompression-bomb limit, and its pixel mode converts to RGB (``IMAGE_MODES``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.mode not in IMAGE_MODES:
                    raise DatasetError(f"{path}: pixel mode {img.mode} ({img.format}) has no conversion to 8-bit "
                                       f"RGB; expected one of {', '.join(IMAGE_MODES)} (e.g. 8- or 16-bit grey, "
                                       f"RGB, CMYK, palette, with or without alpha)")
                img.verify()
                jpeg = img.format == "JPEG"
            if jpeg and not _ends_with_eoi(path):
                with Image.open(path) as img:  # decoded at 1/8 scale: a truncated file raises here, not in training
                    img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
                    img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetError(f"{path}: {bomb_message(exc)}") from None
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file is missing") from None
    except UnidentifiedImageError:
        empty = os.path.isfile(path) and os.path.getsize(path) == 0
        raise DatasetError(f"{path}: {'empty file' if empty else 'corrupt or not an image'} "
                           f"(PIL cannot identify it; expected a JPEG, PNG or other image)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: corrupt or unreadable image ({exc.__class__.__name__}: {exc})") from None


def check_file_dataset(source: DataSource, *, progress: bool = False, desc: str = "") -> None:
    """Run every check above on a dataset of image files (a no-op for in-memory datasets)."""
    parts = _parts(source)
    if not parts:
        return
    root = dataset_root(source)
    if root is not None:
        for _, images in parts:
            check_inside_root(root, images.paths)
    check_unique_images(parts, source.info.get("class_names"))
    total = sum(len(images) for _, images in parts)
    with tqdm(total=total, desc=f"checking images {desc}".strip(), disable=not progress, leave=False,
              dynamic_ncols=True) as bar:
        for _, images in parts:
            for path in images.paths:
                check_image_header(path)
                bar.update()
