"""open-metric-learning's ``df.csv``: the closest thing the field has to an interchange format for retrieval data.

Columns (https://open-metric-learning.readthedocs.io, "dataset format"): ``label`` (integer class id), ``path``
(relative to the image root, or absolute), ``split`` (``train`` or ``validation``), ``is_query`` and
``is_gallery`` (booleans, set on the validation rows; empty on training rows), optional ``category``. Other
columns OML writes (the boxes ``x_1, x_2, y_1, y_2``, ``category_name``, ``sequence``) are read and not used:
images are used whole, as the DML protocol uses CUB-200-2011 and Cars196.

The validation rows are the test set: evaluated against itself when every row is both query and gallery, else
query rows against gallery rows (each row one of the two). Training and test classes must be disjoint: OML's
converters for CUB and Cars write the *classification* split (every class on both sides), which is refused with
one line; ``class_split: first_half`` re-derives the DML split (first half of the sorted class ids train, the
rest test; ``split``, ``is_query`` and ``is_gallery`` then unused). Every problem is one line naming the file and row.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from benchmark.data.base import DataSource
from benchmark.data.files import excerpt, first_half_source, require_file
from benchmark.data.lists import image_root_for, list_source, read_list_rows, resolve_paths, with_test_categories
from benchmark.errors import DatasetError

logger = logging.getLogger(__name__)

REQUIRED = ("label", "path", "split", "is_query", "is_gallery")
#: Columns OML may write that are read and not used (boxes are not applied: images are used whole).
IGNORED = ("x_1", "x_2", "y_1", "y_2", "category_name", "sequence")
OPTIONAL = ("category", *IGNORED)
OML_SPLITS = ("train", "validation")
CLASS_SPLITS = ("file", "first_half")
OML_LAYOUT = "open-metric-learning's df.csv (columns label, path, split, is_query, is_gallery, optional category)"
_TRUE, _FALSE = ("true", "1", "1.0", "yes"), ("false", "0", "0.0", "no")
_EMPTY = ("", "nan", "none", "null", "na", "<na>")
CLASSIFICATION_HINT = ("; a df.csv with the classification split, e.g. open-metric-learning's CUB or Cars converter? "
                       "set the dataset's class_split: first_half to re-derive the DML split (first half of the "
                       "sorted classes train, the rest test)")


def _read(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line number, {column: value})`` of every non-blank row; one line per malformed row."""
    def check_header(header: list[str]) -> None:
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise DatasetError(f"{path}:1: the header has no column {', '.join(missing)} (expected {OML_LAYOUT}; "
                               f"found {excerpt(','.join(header))})")
        twice = sorted({c for c in header if header.count(c) > 1 and c})
        if twice:
            raise DatasetError(f"{path}:1: column {twice[0]!r} appears twice in the header")
        unknown = [c for c in header if c and c not in REQUIRED + OPTIONAL]
        if unknown:
            logger.info("%s: columns %s are not used", path, ", ".join(unknown))

    return read_list_rows(path, OML_LAYOUT, check_header)


def _label(path: Path, lineno: int, value: str) -> int:
    try:
        label = int(float(value)) if value.lower() not in _EMPTY and float(value).is_integer() else None
    except ValueError:
        label = None
    if label is None or label < 0:
        raise DatasetError(f"{path}:{lineno}: expected an integer label >= 0, found {excerpt(value)}")
    return label


def _flag(path: Path, lineno: int, column: str, value: str) -> bool:
    v = value.lower()
    if v in _TRUE or v in _FALSE:
        return v in _TRUE
    raise DatasetError(f"{path}:{lineno}: expected {column} True or False on a validation row, found {excerpt(value)}")


def load_oml(path: str | Path, *, image_root: str | Path | None = None, class_split: str = "file",
             image_size: int = 227, resize: int = 256) -> DataSource:
    """open-metric-learning's ``df.csv`` at ``path`` (see the module docstring); ``image_root``: the folder relative
    paths are resolved against (default: the file's folder); ``class_split``: ``file`` or ``first_half``."""
    if class_split not in CLASS_SPLITS:
        raise DatasetError(f"class_split must be one of {', '.join(CLASS_SPLITS)}, got {class_split!r}")
    path = require_file(Path(path), OML_LAYOUT)
    header, rows = _read(path)
    linenos = [lineno for lineno, _ in rows]
    labels = np.array([_label(path, lineno, r["label"]) for lineno, r in rows], dtype=np.int64)
    for lineno, r in rows:
        if not r["path"]:
            raise DatasetError(f"{path}:{lineno}: the path column is empty")
    if any(r.get(c, "").lower() not in _EMPTY for _, r in rows for c in ("x_1", "x_2", "y_1", "y_2")):
        logger.warning("%s: bounding boxes (x_1, x_2, y_1, y_2) are not applied; images are used whole", path)
    info: dict = {"csv": str(path), "format": "oml", "image_root": str(image_root_for(path, image_root))}
    paths = resolve_paths([r["path"] for _, r in rows], Path(info["image_root"]), [f"{path}:{n}" for n in linenos])
    categories = [r["category"] for _, r in rows] if "category" in header else None
    if class_split == "first_half":
        source = first_half_source("oml", paths, labels, where=path, image_size=image_size, resize=resize, info=info)
        return with_test_categories(source, categories, np.where(np.isin(labels, source.test.labels), "test", "train"))

    splits = []
    for lineno, r in rows:
        if r["split"] not in OML_SPLITS:
            raise DatasetError(f"{path}:{lineno}: expected split train or validation, found {excerpt(r['split'])}")
        splits.append(r["split"])
    val = [(lineno, r) for lineno, r in rows if r["split"] == "validation"]
    if not val:
        raise DatasetError(f"{path}: no rows with split validation (expected train and validation rows)")
    flags = [(_flag(path, n, "is_query", r["is_query"]), _flag(path, n, "is_gallery", r["is_gallery"]))
             for n, r in val]
    self_test = all(q and g for q, g in flags)
    tags = iter(flags)
    out = []
    for (lineno, _), split in zip(rows, splits):
        if split == "train":
            out.append("train")
            continue
        q, g = next(tags)
        if self_test:
            out.append("test")
        elif q == g:
            raise DatasetError(f"{path}:{lineno}: is_query and is_gallery are both {q} on a validation row; expected "
                               f"each row a query or a gallery image (or every row both: the test set against "
                               f"itself)")
        else:
            out.append("query" if q else "gallery")
    source = list_source("oml", paths, labels, out, linenos, [r["label"] for _, r in rows], list_file=path,
                         image_size=image_size, resize=resize, info=info, hint=CLASSIFICATION_HINT)
    return with_test_categories(source, categories, out)
