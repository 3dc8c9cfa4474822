"""CUB-200-2011 loader: 200 bird species, 11,788 images; classes 1-100 train, 101-200 test.

Reads ``<root>/CUB_200_2011/images/<NNN.name>/*.jpg`` (``root`` may also be the ``CUB_200_2011``
folder itself). Labels come from the official ``images.txt`` + ``image_class_labels.txt`` when they
are present (checked against the folders' numeric prefixes), else from the sorted folder order.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path, PurePosixPath

from benchmark.data.base import DataSource
from benchmark.data.files import (
    check_images_exist,
    first_half_source,
    parse_int,
    read_text_lines,
    require_file,
    split_rows,
    warn_if_not_published,
)
from benchmark.errors import DatasetError

logger = logging.getLogger(__name__)

CUB_CLASSES = 200
CUB_IMAGES = 11_788
_PREFIX = re.compile(r"(\d+)\.")


def _find_base(root: Path) -> Path:
    for base in (root / "CUB_200_2011", root):
        if (base / "images").is_dir():
            return base
    layout = f"{root}/CUB_200_2011/images/<NNN.name>/*.jpg"
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found (expected {layout})")
    raise DatasetError(f"{root / 'CUB_200_2011' / 'images'}: folder not found "
                       f"(expected {layout}, or root set to the CUB_200_2011 folder)")


def _from_official_files(images_dir: Path, images_txt: Path, labels_txt: Path) -> tuple[list[Path], list[int]]:
    relpaths: dict[int, tuple[int, str]] = {}  # image id -> (line in images.txt, relative path)
    for lineno, (iid, rel) in split_rows(images_txt, read_text_lines(images_txt), ("image_id", "path")):
        iid = parse_int(images_txt, lineno, "image_id", iid)
        if iid in relpaths:
            raise DatasetError(f"{images_txt}:{lineno}: image id {iid} is listed twice "
                               f"(first at line {relpaths[iid][0]})")
        relpaths[iid] = (lineno, rel)
    if not relpaths:
        raise DatasetError(f"{images_txt}: no rows (expected '<image_id> <NNN.name>/<file>.jpg' lines)")
    labels: dict[int, tuple[int, int]] = {}  # image id -> (line in image_class_labels.txt, label)
    for lineno, (iid, label) in split_rows(labels_txt, read_text_lines(labels_txt), ("image_id", "class_id")):
        iid = parse_int(labels_txt, lineno, "image_id", iid)
        label = parse_int(labels_txt, lineno, "class_id", label)
        if iid in labels:
            raise DatasetError(f"{labels_txt}:{lineno}: image id {iid} is listed twice "
                               f"(first at line {labels[iid][0]})")
        if iid not in relpaths:
            raise DatasetError(f"{labels_txt}:{lineno}: image id {iid} is not listed in {images_txt}")
        labels[iid] = (lineno, label)

    paths, out_labels, lines = [], [], []
    for iid in sorted(relpaths):
        img_line, rel = relpaths[iid]
        if iid not in labels:
            raise DatasetError(f"{images_txt}:{img_line}: image id {iid} has no label in {labels_txt}")
        lab_line, label = labels[iid]
        parts = PurePosixPath(rel).parts
        match = _PREFIX.match(parts[0]) if len(parts) == 2 else None
        if match is None:
            raise DatasetError(f"{images_txt}:{img_line}: expected a path '<NNN.name>/<file>.jpg', found {rel!r}")
        if int(match.group(1)) != label:
            raise DatasetError(f"{labels_txt}:{lab_line}: image {iid} ({rel}) has label {label} "
                               f"but its folder {parts[0]!r} says {int(match.group(1))}")
        paths.append(images_dir / rel)
        out_labels.append(label)
        lines.append(img_line)
    check_images_exist(paths, lambda i: f"{images_txt}:{lines[i]}")
    return paths, out_labels


def _from_folders(images_dir: Path) -> tuple[list[Path], list[int]]:
    folders = sorted(p for p in images_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{images_dir}: no class folders found (expected <NNN.name>/*.jpg)")
    paths, labels = [], []
    for label, folder in enumerate(folders, 1):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg" and p.is_file())
        if not images:
            raise DatasetError(f"{folder}: class folder has no .jpg images")
        paths += images
        labels += [label] * len(images)
    return paths, labels


def load_cub200(root: str | Path, *, image_size: int = 227, resize: int = 256) -> DataSource:
    """CUB-200-2011 from ``root`` (the folder holding ``CUB_200_2011``, or that folder itself).

    Train = classes 1-100, test = 101-200 (the first half of the sorted class ids). A subset of
    the dataset loads with a logged warning that its size differs from the published one.
    """
    base = _find_base(Path(root))
    images_dir = base / "images"
    images_txt, labels_txt = base / "images.txt", base / "image_class_labels.txt"
    if images_txt.exists() or labels_txt.exists():
        require_file(images_txt, "CUB's images.txt ('<image_id> <NNN.name>/<file>.jpg' lines) "
                                 "beside image_class_labels.txt")
        require_file(labels_txt, "CUB's image_class_labels.txt ('<image_id> <class_id>' lines) beside images.txt")
        paths, labels = _from_official_files(images_dir, images_txt, labels_txt)
    else:
        logger.info("%s: no images.txt / image_class_labels.txt, labels taken from the folder order", base)
        paths, labels = _from_folders(images_dir)
    warn_if_not_published("CUB-200-2011", len(set(labels)), len(paths), CUB_CLASSES, CUB_IMAGES, base)
    return first_half_source("cub200", paths, labels, where=base, image_size=image_size, resize=resize,
                             info={"root": str(base)})
