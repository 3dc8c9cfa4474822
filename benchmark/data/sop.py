"""Stanford Online Products loader: 22,634 products, 120,053 images; the official split
(``Ebay_train.txt``: 11,318 classes, ``Ebay_test.txt``: 11,316 classes).

Both files have the header ``image_id class_id super_class_id path``; paths are relative to
``root``. The super-class ids are kept in ``info`` (``train_super_labels``/``test_super_labels``), and the
test images' super-class names (``bicycle`` for ``bicycle_final/...``) as ``test_categories``: the evaluation
reports P@1 and MAP@R per super-class (``benchmark.evaluation.embed``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data.base import DataSource
from benchmark.data.files import (
    check_header,
    check_images_exist,
    files_source,
    parse_int,
    read_text_lines,
    require_dir,
    require_file,
    split_rows,
    warn_if_not_published,
)
from benchmark.errors import DatasetError

SOP_COLUMNS = ("image_id", "class_id", "super_class_id", "path")
SOP_CLASSES = 22_634
SOP_IMAGES = 120_053


def _read_split(txt: Path, root: Path) -> tuple[list[Path], np.ndarray, np.ndarray, list[int]]:
    """``(image paths, class ids, super-class ids, line numbers)`` of one official split file."""
    lines = read_text_lines(txt)
    check_header(txt, lines[0] if lines else None, SOP_COLUMNS)
    rows = split_rows(txt, lines[1:], SOP_COLUMNS, first_lineno=2)
    if not rows:
        raise DatasetError(f"{txt}: no rows after the header (expected '{' '.join(SOP_COLUMNS)}' rows)")
    paths, labels, supers, linenos = [], [], [], []
    for lineno, (image_id, class_id, super_id, rel) in rows:
        parse_int(txt, lineno, "image_id", image_id)
        labels.append(parse_int(txt, lineno, "class_id", class_id))
        supers.append(parse_int(txt, lineno, "super_class_id", super_id))
        paths.append(root / rel)
        linenos.append(lineno)
    return paths, np.asarray(labels, dtype=np.int64), np.asarray(supers, dtype=np.int64), linenos


def load_sop(root: str | Path, *, image_size: int = 227, resize: int = 256) -> DataSource:
    """Stanford Online Products from ``root`` (holding ``Ebay_train.txt``, ``Ebay_test.txt`` and
    the ``<category>_final/`` image folders). Train/test are the official files, checked to share
    no class id. A subset loads with a logged warning that its size differs from the published one.
    """
    root = Path(root)
    layout = f"{root}/Ebay_train.txt, {root}/Ebay_test.txt and the <category>_final/ image folders"
    require_dir(root, layout)
    expected = f"the official SOP split file ({layout})"
    train_txt = require_file(root / "Ebay_train.txt", expected)
    test_txt = require_file(root / "Ebay_test.txt", expected)
    train_paths, train_labels, train_supers, train_lines = _read_split(train_txt, root)
    test_paths, test_labels, test_supers, test_lines = _read_split(test_txt, root)

    shared = np.intersect1d(train_labels, test_labels)
    if len(shared):
        c = shared[0]
        raise DatasetError(f"{train_txt}:{train_lines[int(np.argmax(train_labels == c))]}: class_id {c} is also "
                           f"in {test_txt}:{test_lines[int(np.argmax(test_labels == c))]} "
                           f"(expected disjoint train and test classes; {len(shared)} shared)")
    check_images_exist(train_paths, lambda i: f"{train_txt}:{train_lines[i]}")
    check_images_exist(test_paths, lambda i: f"{test_txt}:{test_lines[i]}")
    n_classes = len(np.unique(train_labels)) + len(np.unique(test_labels))
    warn_if_not_published("Stanford Online Products", n_classes, len(train_paths) + len(test_paths),
                          SOP_CLASSES, SOP_IMAGES, root)
    return files_source("sop", (train_paths, train_labels), (test_paths, test_labels),
                        image_size=image_size, resize=resize,
                        info={"root": str(root), "train_super_labels": train_supers,
                              "test_super_labels": test_supers,
                              "test_categories": super_class_names(test_paths, test_supers, root)})


def super_class_names(paths: list[Path], supers: np.ndarray, root: Path) -> np.ndarray:
    """Each image's super-class by name: its folder without ``_final`` (``bicycle_final/...`` -> ``bicycle``), or
    the super-class id as text for an image outside such a folder."""
    names = []
    for path, super_id in zip(paths, supers):
        parts = path.relative_to(root).parts
        folder = parts[0] if len(parts) > 1 else ""
        names.append(folder[:-len("_final")] if folder.endswith("_final") else str(int(super_id)))
    return np.asarray(names, dtype=object)
