"""Cars196 (Stanford Cars) loader: 196 car models, 16,185 images; classes 1-98 train, 99-196 test.

Two layouts are read, with the same classes and images:

* the original archive: ``<root>/cars_annos.mat`` (struct array ``annotations`` with fields
  ``relative_im_path``, e.g. ``car_ims/000001.jpg``, and ``class``, 1-based; the ``bbox_*`` and ``test``
  fields are not used: the metric-learning split is by class) and the images under ``<root>/car_ims/``;
* the devkit layout (what is distributed now, e.g. by torchvision's ``StanfordCars``): ``<root>/cars_train/``,
  ``<root>/cars_test/``, ``<root>/devkit/cars_train_annos.mat`` and ``cars_test_annos_withlabels.mat`` (in
  ``<root>`` or ``<root>/devkit``), each a struct array ``annotations`` with fields ``fname`` (e.g. ``00001.jpg``)
  and ``class`` (1-based, the same ids as ``cars_annos.mat`` and ``devkit/cars_meta.mat``'s ``class_names``).
  The devkit's train/test is the *classification* split (every class in both); it is ignored, and the two
  halves are pooled and split by class like the original archive.
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
#: The devkit's annotation files: (image folder, annotation file names looked for, in order).
DEVKIT_PARTS = (("cars_train", ("devkit/cars_train_annos.mat",)),
                ("cars_test", ("cars_test_annos_withlabels.mat", "devkit/cars_test_annos_withlabels.mat")))


def _single(mat: Path, index: int, field: str, value: object) -> object:
    """The one element of a MATLAB cell (``loadmat`` wraps scalars and strings in arrays)."""
    items = np.asarray(value).ravel()
    if len(items) != 1:
        raise DatasetError(f"{mat}: annotations({index}).{field}: expected one value, found {len(items)}")
    return items[0]


def _read_annotations(mat: Path, path_field: str = "relative_im_path",
                      example: str = "car_ims/000001.jpg") -> tuple[list[str], list[int]]:
    try:
        data = scipy.io.loadmat(str(mat))
    except Exception as exc:  # noqa: BLE001 - a bad file makes scipy raise MatReadError, ValueError, IndexError...
        raise DatasetError(f"{mat}: not a readable MATLAB file ({exc.__class__.__name__}: {exc})") from None
    if "annotations" not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise DatasetError(f"{mat}: expected a variable 'annotations', found {found}")
    ann = data["annotations"]
    names = ann.dtype.names or ()
    required = (path_field, "class")
    for field in required:
        if field not in names:
            raise DatasetError(f"{mat}: annotations has no field {field!r} (expected {', '.join(required)}; "
                               f"found {', '.join(names) or 'no fields'})")
    ann = ann.ravel()
    if len(ann) == 0:
        raise DatasetError(f"{mat}: annotations is empty")
    relpaths, labels = [], []
    for i, entry in enumerate(ann, 1):  # 1-based, as MATLAB numbers them
        rel = _single(mat, i, path_field, entry[path_field])
        label = _single(mat, i, "class", entry["class"])
        if not isinstance(rel, str) or not rel:
            raise DatasetError(f"{mat}: annotations({i}).{path_field}: expected a path like "
                               f"{example!r}, found {rel!r}")
        if (not isinstance(label, (int, float, np.number)) or isinstance(label, bool)
                or not float(label).is_integer() or label < 1):
            raise DatasetError(f"{mat}: annotations({i}).class: expected a positive integer, found {label!r}")
        relpaths.append(rel)
        labels.append(int(label))
    return relpaths, labels


LAYOUTS = ("cars_annos.mat and car_ims/ (the original archive), or cars_train/, cars_test/, "
           "devkit/cars_train_annos.mat and cars_test_annos_withlabels.mat (the devkit)")


def _devkit_files(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Paths, labels and where each is listed, of the devkit layout's train and test halves (pooled)."""
    paths, labels, where = [], [], []
    for folder, names in DEVKIT_PARTS:
        mat = next((root / n for n in names if (root / n).is_file()), None)
        if mat is None:
            raise DatasetError(f"{root / names[0]}: file not found (expected the Cars196 devkit layout: "
                               f"{' or '.join(str(root / n) for n in names)}; the test file must be the one with "
                               f"labels, cars_test_annos_withlabels.mat)")
        images = require_dir(root / folder, f"the Cars196 devkit image folder beside {mat.name}")
        relpaths, part_labels = _read_annotations(mat, "fname", "00001.jpg")
        paths += [images / rel for rel in relpaths]
        labels += part_labels
        where += [f"{mat}, annotations({i})" for i in range(1, len(relpaths) + 1)]
    return paths, labels, where


def load_cars196(root: str | Path, *, image_size: int = 227, resize: int = 256) -> DataSource:
    """Cars196 from ``root``, in the original layout (``cars_annos.mat`` and ``car_ims/``) or the devkit
    layout (``cars_train/``, ``cars_test/``, ``devkit/cars_train_annos.mat``, ``cars_test_annos_withlabels.mat``).

    Train = classes 1-98, test = 99-196 (the first half of the sorted class ids), in either layout. A subset
    of the dataset loads with a logged warning that its size differs from the published one.
    """
    root = Path(root)
    require_dir(root, LAYOUTS)
    if not (root / "cars_annos.mat").exists() and (root / "devkit").is_dir():
        paths, labels, where = _devkit_files(root)
        check_images_exist(paths, lambda i: where[i])
    else:
        layout = f"{root}/cars_annos.mat and {root}/car_ims/*.jpg, or the devkit layout ({root}/devkit/)"
        mat = require_file(root / "cars_annos.mat", f"the Cars196 annotation file ({layout})")
        require_dir(root / "car_ims", f"the Cars196 image folder ({layout})")
        relpaths, labels = _read_annotations(mat)
        paths = [root / rel for rel in relpaths]
        check_images_exist(paths, lambda i: f"{mat}, annotations({i + 1})")
    warn_if_not_published("Cars196", len(set(labels)), len(paths), CARS_CLASSES, CARS_IMAGES, root)
    return first_half_source("cars196", paths, labels, where=root, image_size=image_size, resize=resize,
                             info={"root": str(root)})
