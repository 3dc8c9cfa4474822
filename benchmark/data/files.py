"""File-handling checks shared by every file-based loader (CUB, Cars196, SOP, In-shop, folder, CSV).

Every check raises ``DatasetError`` with a one-line message that names the file (and the line
where there is one), and says what was expected and what was found.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from benchmark.data.base import DataSource, FileImageSet
from benchmark.data.splits import first_half_classes
from benchmark.data.transforms import imagenet_eval_transform, imagenet_train_transform
from benchmark.config import not_utf8
from benchmark.errors import DatasetError

logger = logging.getLogger(__name__)

Files = tuple[Sequence[Path], Sequence[int]]

def require_dir(path: Path, expected: str) -> Path:
    """``path`` if it is a folder, else ``DatasetError`` saying what the folder should hold."""
    if not path.is_dir():
        found = "is not a folder" if path.exists() else f"folder not found{_relative_to_cwd(path)}"
        raise DatasetError(f"{path}: {found} (expected {expected})")
    return path


def _relative_to_cwd(path: Path) -> str:
    """Where a relative path was looked for (a batch job may start in another folder than the user's shell)."""
    return "" if path.is_absolute() else f" in the current folder {Path.cwd()}"


def require_file(path: Path, expected: str) -> Path:
    """``path`` if it is a file, else ``DatasetError`` saying what the file should be."""
    if not path.is_file():
        found = "is not a file" if path.exists() else f"file not found{_relative_to_cwd(path)}"
        raise DatasetError(f"{path}: {found} (expected {expected})")
    return path


def read_text_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a byte-order mark is dropped)."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: {not_utf8(exc)}") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def excerpt(text: str, limit: int = 80) -> str:
    """``text`` stripped, cut to ``limit`` characters and quoted, for an error message."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def split_rows(path: Path, lines: Iterable[str], columns: Sequence[str], *,
               first_lineno: int = 1) -> list[tuple[int, list[str]]]:
    """Whitespace-separated rows ``(line number, fields)``, each checked to have ``len(columns)``
    fields; blank lines are skipped. ``first_lineno`` is the line number of ``lines[0]``."""
    rows = []
    for lineno, line in enumerate(lines, first_lineno):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(columns):
            raise DatasetError(f"{path}:{lineno}: expected {len(columns)} columns ({' '.join(columns)}), "
                               f"found {len(fields)}: {excerpt(line)}")
        rows.append((lineno, fields))
    return rows


def check_header(path: Path, line: str | None, columns: Sequence[str], lineno: int = 1) -> None:
    """The header line must be exactly ``columns`` (whitespace-separated)."""
    found = "end of file" if line is None else excerpt(line)
    if line is None or line.split() != list(columns):
        raise DatasetError(f"{path}:{lineno}: expected the header {' '.join(columns)!r}, found {found}")


def parse_int(path: Path, lineno: int, column: str, value: str) -> int:
    """``value`` as an integer, or ``DatasetError`` naming the file, line and column."""
    try:
        return int(value)
    except ValueError:
        raise DatasetError(f"{path}:{lineno}: expected an integer {column}, found {excerpt(value)}") from None


def check_images_exist(paths: Sequence[Path], listed_in: Callable[[int], str]) -> None:
    """Every image file must exist; the first missing one is reported with where it was listed."""
    for i, p in enumerate(paths):
        if not os.path.exists(p):
            hint = "; a Windows path? write / between folders" if "\\" in str(p) and os.sep == "/" else ""
            raise DatasetError(f"{p}: image file is missing (listed in {listed_in(i)}{hint})")


def warn_if_not_published(name: str, n_classes: int, n_images: int, classes: int, images: int,
                          where: Path) -> None:
    """Log a warning when a dataset's size differs from the published one (a subset is allowed)."""
    if (n_classes, n_images) != (classes, images):
        logger.warning("%s at %s has %d classes and %d images; the published dataset has %d and %d "
                       "(loading it as a subset)", name, where, n_classes, n_images, classes, images)


def files_source(name: str, train: Files, test: Files, *, image_size: int, resize: int,
                 query: Files | None = None, gallery: Files | None = None,
                 info: dict | None = None) -> DataSource:
    """A ``DataSource`` of image files (each loader has checked that train and test are non-empty
    and class-disjoint): training images get the train transform, the others the eval transform."""
    train_tf = imagenet_train_transform(image_size, resize)
    eval_tf = imagenet_eval_transform(image_size, resize)

    def image_set(files: Files | None, transform) -> FileImageSet | None:
        return None if files is None else FileImageSet(files[0], files[1], transform)

    return DataSource(name=name, train=image_set(train, train_tf), test=image_set(test, eval_tf),
                      train_transform=train_tf, eval_transform=eval_tf,
                      query=image_set(query, eval_tf), gallery=image_set(gallery, eval_tf),
                      info=dict(info or {}))


def first_half_source(name: str, paths: Sequence[Path], labels: Sequence[int], *, where: Path,
                      image_size: int, resize: int, info: dict | None = None) -> DataSource:
    """Train on the first half of the sorted class ids, test on the rest (CUB / Cars196 rule)."""
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = len(np.unique(labels))
    if n_classes < 2:
        raise DatasetError(f"{where}: found {n_classes} class(es), expected at least 2 to split train/test")
    mask = first_half_classes(labels)
    paths = list(paths)
    train = ([p for p, m in zip(paths, mask) if m], labels[mask])
    test = ([p for p, m in zip(paths, mask) if not m], labels[~mask])
    return files_source(name, train, test, image_size=image_size, resize=resize, info=info)
