"""The user's own data: a folder of class sub-folders, or a CSV of paths and labels.

Every check raises ``DatasetError`` with a one-line message that names the file (and the line
where there is one), and says what was expected and what was found.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import numpy as np

from benchmark.data.base import DataSource
from benchmark.data.files import (
    Files,
    excerpt,
    files_source,
    first_half_source,
    require_dir,
    require_file,
)
from benchmark.data.lists import (
    LIST_SPLITS, image_root_for, list_source, read_list_rows, resolve_paths, with_test_categories,
)
from benchmark.errors import DatasetError


#: File endings (lower case) read as images in a folder dataset.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
FOLDER_LAYOUT = "one sub-folder of images per class, or train/ and test/ folders that each hold class sub-folders"
CSV_LAYOUT = ("a CSV file with header path,label and optional split (train/test, or train/query/gallery) and "
              "category columns")
CSV_COLUMNS = ("path", "label", "split", "category")
SPLITS = LIST_SPLITS



# --------------------------------------------------------------------------- image folder

def _refuse_link(path: Path, what: str) -> None:
    if path.is_symlink():
        raise DatasetError(f"{path}: {what} is a symbolic link (to {os.readlink(path)}); expected a real folder "
                           f"(a linked folder can repeat other classes' images, e.g. training images as test images)")


def _images_under(folder: Path) -> list[Path]:
    """Sorted image files anywhere under ``folder``; a linked sub-folder is refused (never followed)."""
    images = []
    for here, dirs, files in os.walk(folder):
        for d in dirs:
            if not d.startswith("."):
                _refuse_link(Path(here) / d, "a folder inside a class folder")
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            path = Path(here) / f
            if Path(f).suffix.lower() in IMAGE_EXTENSIONS and not f.startswith("."):
                _require_image_file(path)
                images.append(path)
    return sorted(images)


def _require_image_file(path: Path) -> None:
    """An image name must be a regular file: a broken or looping link (e.g. into an unmounted data store)
    or a pipe is refused, not skipped (a dataset silently smaller than the user's is worse)."""
    if os.path.isfile(path):
        return
    what = "not a regular file"
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # a loop, before Python 3.13
            what = "a symbolic link loop"
        except OSError as exc:
            what = ("a symbolic link loop" if exc.errno == errno.ELOOP
                    else f"a broken symbolic link (to {os.readlink(path)}, which does not exist)")
        else:
            what = "a symbolic link to something other than a file"
    raise DatasetError(f"{path}: {what}; expected an image file (remove it, or restore what it points to)")


def _class_folders(folder: Path) -> list[tuple[str, list[Path]]]:
    """Sorted ``(class name, sorted image paths)`` of the sub-folders of ``folder``."""
    classes = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        _refuse_link(sub, "class folder")
        images = _images_under(sub)
        if not images:
            raise DatasetError(f"{sub}: class folder has no images (expected files ending in "
                               f"{', '.join(IMAGE_EXTENSIONS)})")
        classes.append((sub.name, images))
    if not classes:
        raise DatasetError(f"{folder}: no class sub-folders found (expected {FOLDER_LAYOUT})")
    return classes


def _folder_files(classes: list[tuple[str, list[Path]]], ids: dict[str, int]) -> Files:
    paths = [p for _, images in classes for p in images]
    labels = [ids[name] for name, images in classes for _ in images]
    return paths, labels


def load_image_folder(root: str | Path, *, image_size: int = 227, resize: int = 256) -> DataSource:
    """A folder with one sub-folder of images per class; class ids are the sorted folder names'
    positions (0-based, names kept in ``info["class_names"]``). Train/test is the first half of
    the sorted classes, unless ``root`` has ``train/`` and ``test/`` folders: then those."""
    root = require_dir(Path(root), FOLDER_LAYOUT)
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() or test_dir.is_dir():
        missing = test_dir if train_dir.is_dir() else train_dir
        require_dir(missing, f"both {train_dir} and {test_dir}, each with one sub-folder per class")
        others = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                        and p.name not in ("train", "test"))
        if others:
            raise DatasetError(f"{root}: holds train/ and test/ and also {', '.join(f'{n}/' for n in others[:3])}"
                               f"{' ...' if len(others) > 3 else ''}, which would be left out; expected only train/ "
                               f"and test/ (the protocol makes its own validation folds from train/: move a val/ "
                               f"split's classes into train/ or out of the root)")
        train_classes, test_classes = _class_folders(train_dir), _class_folders(test_dir)
        shared = sorted({n for n, _ in train_classes} & {n for n, _ in test_classes})
        if shared:
            raise DatasetError(f"{root}: class folder(s) {shared[:5]} are in both train/ and test/ "
                               f"(expected class-disjoint splits)")
        names = sorted(n for n, _ in train_classes + test_classes)
        ids = {n: i for i, n in enumerate(names)}
        return files_source("folder", _folder_files(train_classes, ids), _folder_files(test_classes, ids),
                            image_size=image_size, resize=resize,
                            info={"root": str(root), "class_names": names})
    classes = _class_folders(root)
    names = [n for n, _ in classes]
    paths, labels = _folder_files(classes, {n: i for i, n in enumerate(names)})
    return first_half_source("folder", paths, labels, where=root, image_size=image_size, resize=resize,
                             info={"root": str(root), "class_names": names})


# --------------------------------------------------------------------------- CSV

_INT = re.compile(r"[+-]?\d+")


#: Labels that spreadsheets and pandas write for a missing value (compared in lower case).
MISSING_LABELS = ("nan", "na", "n/a", "<na>", "null", "none", "nat")


def _check_labels(path: Path, rows: list[tuple]) -> None:
    """No missing-value label (``NaN`` & co.), no negative id, and integer ids or names, not a mix (a stray word among
    integer ids, e.g. a missing value, would become a class of its own)."""
    for lineno, _, label, *_ in rows:
        if label.lower() in MISSING_LABELS:
            raise DatasetError(f"{path}:{lineno}: the label is missing ({excerpt(label)}); expected a class for "
                               f"every row")
    ints = [(lineno, label) for lineno, _, label, *_ in rows if _INT.fullmatch(label)]
    negative = next(((lineno, label) for lineno, label in ints if int(label) < 0), None)
    if negative is not None:
        raise DatasetError(f"{path}:{negative[0]}: label {negative[1]} is negative (often a mark for unlabelled "
                           f"images); expected class ids >= 0 (leave unlabelled images out)")
    if ints and len(ints) < len(rows):
        words = [(lineno, label) for lineno, _, label, *_ in rows if not _INT.fullmatch(label)]
        odd, usual = (words, ints) if len(ints) >= len(words) else (ints, words)
        kind = "an integer" if odd is ints else "not an integer"
        raise DatasetError(f"{path}:{odd[0][0]}: label {excerpt(odd[0][1])} is {kind}, unlike {len(usual)} other "
                           f"rows (e.g. line {usual[0][0]}: {excerpt(usual[0][1])}); expected all integer class ids "
                           f"or all class names")


def load_csv(path: str | Path, *, image_root: str | Path | None = None, class_split: str = "file",
             image_size: int = 227, resize: int = 256) -> DataSource:
    """A CSV file with header ``path,label`` and an optional ``split`` column (``train``/``test``, or
    ``train``/``query``/``gallery``: then query rows are evaluated against gallery rows).

    Absolute paths are taken as written; relative paths are resolved against ``image_root`` (default: the
    CSV's folder) and must stay inside it (``benchmark.data.lists``). Integer labels are kept; otherwise the
    labels are mapped to 0, 1, ... in sorted order (names in ``info["class_names"]``); a mix of both,
    a missing label (``NaN``, ``NA``, ``null``, ...) and a quoted field running over a line end are refused. Without a
    ``split`` column, or with ``class_split="first_half"``, the first half of the sorted classes is train, the rest
    test.
    """
    path = require_file(Path(path), CSV_LAYOUT)

    def check_header(header: list[str]) -> None:
        unknown = [c for c in header if c not in CSV_COLUMNS]
        if unknown or "path" not in header or "label" not in header or len(set(header)) != len(header):
            line = ",".join(header)
            other = next((name for sep, name in ((";", "semicolons"), ("\t", "tabs")) if sep in line), None)
            hint = f" (separated by {other}? save it with commas)" if other and len(header) == 1 else ""
            raise DatasetError(f"{path}:1: expected the header path,label or path,label,split (and an optional "
                               f"category column), found {excerpt(line)}{hint}")

    header, values = read_list_rows(path, CSV_LAYOUT, check_header)
    col = set(header)
    rows = []  # (line number, path, label, split, category)
    for lineno, row in values:
        for c, v in row.items():
            if not v:
                raise DatasetError(f"{path}:{lineno}: the {c} column is empty")
        split = row.get("split")
        if split is not None and split not in SPLITS:
            raise DatasetError(f"{path}:{lineno}: expected split train or test (or train, query or gallery), "
                               f"found {excerpt(split)}")
        rows.append((lineno, row["path"], row["label"], split, row.get("category")))

    raw_labels = [r[2] for r in rows]
    _check_labels(path, rows)
    info: dict = {"csv": str(path)}
    if all(_INT.fullmatch(v) for v in raw_labels):
        labels = np.array([int(v) for v in raw_labels], dtype=np.int64)
    else:
        names = sorted(set(raw_labels))
        ids = {n: i for i, n in enumerate(names)}
        labels = np.array([ids[v] for v in raw_labels], dtype=np.int64)
        info["class_names"] = names
    info["image_root"] = str(image_root_for(path, image_root))
    paths = resolve_paths([r[1] for r in rows], Path(info["image_root"]), [f"{path}:{r[0]}" for r in rows])
    categories = [r[4] for r in rows] if "category" in col else None
    if "split" not in col or class_split == "first_half":
        source = first_half_source("csv", paths, labels, where=path, image_size=image_size, resize=resize,
                                   info=info)
        return with_test_categories(source, categories, np.where(np.isin(labels, source.test.labels), "test", "train"))
    source = list_source("csv", paths, labels, [r[3] for r in rows], [r[0] for r in rows], raw_labels,
                         list_file=path, image_size=image_size, resize=resize, info=info)
    return with_test_categories(source, categories, [r[3] for r in rows])
