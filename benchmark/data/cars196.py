"""Cars196 (Stanford Cars) loader: 196 car models, 16,185 images; classes 1-98 train, 99-196 test.

Reads ``<root>/cars_annos.mat`` (struct array ``annotations`` with fields ``relative_im_path``,
e.g. ``car_ims/000001.jpg``, and ``class``, 1-based; the ``bbox_*`` and ``test`` fields are not
used: the metric-learning split is by class) and the images under ``<root>/car_ims/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from benchmark.data.base import DataSource
from benchmark.data.files import (
    check_images_exist,
    first_half_source,
    require_dir,
    require_file,
    warn_if_not_published,
)
from benchmark.errors import DatasetError

CARS_CLASSES = 196
CARS_IMAGES = 16_185
REQUIRED_FIELDS = ("relative_im_path", "class")


def _single(mat: Path, index: int, field: str, value: object) -> object:
    """The one element of a MATLAB cell (``loadmat`` wraps scalars and strings in arrays)."""
    items = np.asarray(value).ravel()
    if len(items) != 1:
        raise DatasetError(f"{mat}: annotations({index}).{field}: expected one value, found {len(items)}")
    return items[0]


def _read_annotations(mat: Path) -> tuple[list[str], list[int]]:
    try:
        data = scipy.io.loadmat(str(mat))
    except Exception as exc:  # noqa: BLE001 - a bad file makes scipy raise MatReadError, ValueError, IndexError...
        raise DatasetError(f"{mat}: not a readable MATLAB file ({exc.__class__.__name__}: {exc})") from None
    if "annotations" not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise DatasetError(f"{mat}: expected a variable 'annotations', found {found}")
    ann = data["annotations"]
    names = ann.dtype.names or ()
    for field in REQUIRED_FIELDS:
        if field not in names:
            raise DatasetError(f"{mat}: annotations has no field {field!r} (expected {', '.join(REQUIRED_FIELDS)}; "
                               f"found {', '.join(names) or 'no fields'})")
    ann = ann.ravel()
    if len(ann) == 0:
        raise DatasetError(f"{mat}: annotations is empty")
    relpaths, labels = [], []
    for i, entry in enumerate(ann, 1):  # 1-based, as MATLAB numbers them
        rel = _single(mat, i, "relative_im_path", entry["relative_im_path"])
        label = _single(mat, i, "class", entry["class"])
        if not isinstance(rel, str) or not rel:
            raise DatasetError(f"{mat}: annotations({i}).relative_im_path: expected a path like "
                               f"'car_ims/000001.jpg', found {rel!r}")
        if (not isinstance(label, (int, float, np.number)) or isinstance(label, bool)
                or not float(label).is_integer() or label < 1):
            raise DatasetError(f"{mat}: annotations({i}).class: expected a positive integer, found {label!r}")
        relpaths.append(rel)
        labels.append(int(label))
    return relpaths, labels


def load_cars196(root: str | Path, *, image_size: int = 227, resize: int = 256) -> DataSource:
    """Cars196 from ``root`` (holding ``cars_annos.mat`` and ``car_ims/``).

    Train = classes 1-98, test = 99-196 (the first half of the sorted class ids). A subset of
    the dataset loads with a logged warning that its size differs from the published one.
    """
    root = Path(root)
    layout = f"{root}/cars_annos.mat and {root}/car_ims/*.jpg"
    require_dir(root, layout)
    mat = require_file(root / "cars_annos.mat", f"the Cars196 annotation file ({layout})")
    require_dir(root / "car_ims", f"the Cars196 image folder ({layout})")
    relpaths, labels = _read_annotations(mat)
    paths = [root / rel for rel in relpaths]
    check_images_exist(paths, lambda i: f"{mat}, annotations({i + 1})")
    warn_if_not_published("Cars196", len(set(labels)), len(paths), CARS_CLASSES, CARS_IMAGES, root)
    return first_half_source("cars196", paths, labels, where=root, image_size=image_size, resize=resize,
                             info={"root": str(root)})
