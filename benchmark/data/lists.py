"""What every list-file dataset (``csv``, ``oml``) shares: image paths as the user wrote them, and the split rows.

A list file is written by the user, so an image may be named by an absolute path (taken as written) or by a
path relative to the *image root* (``datasets[].image_root``; default: the list file's folder). A relative
path must stay inside the image root once ``..`` and symbolic links are resolved (the check folder datasets
get in ``benchmark.data.integrity``); an absolute path is not checked against any root, since the user chose
it. Every image is still checked to exist, to be listed once, and to be readable.

``read_list_rows`` reads a list file's header and rows (one line per malformed row). ``list_source`` turns rows
tagged ``train``, ``test``, ``query`` or ``gallery`` into a ``DataSource``: train and test (evaluated against
itself), or train, query and gallery (query against gallery), checked to be
class-disjoint with one line naming the two rows of the first shared class.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmark.config import not_utf8
from benchmark.data.base import DataSource
from benchmark.data.files import check_images_exist, excerpt, files_source, require_dir
from benchmark.errors import DatasetError

#: The split values of a list file's rows.
LIST_SPLITS = ("train", "test", "query", "gallery")


def read_list_rows(path: Path, layout: str, check_header: Callable[[list[str]], None]
                   ) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and ``(line number, {column: value})`` of every non-blank row of the CSV list file ``path``,
    values stripped.

    ``check_header(header)`` raises on a header the format does not take. Empty columns a spreadsheet added
    at the end of the header are dropped (their cells must stay empty). A row with another number of columns,
    a quoted field running over a line end, a malformed row, a file that is not UTF-8 or one without rows
    is refused in one line naming the file, the line and ``layout`` (what was expected).
    """
    start = 1  # the line where the record being read starts (a quoted field may span lines)
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, strict=True)
            header = [c.strip() for c in next(reader, [])]
            width = len(header)
            while len(header) > 1 and not header[-1]:
                header.pop()
            check_header(header)
            start = reader.line_num + 1
            for fields in reader:
                lineno, start = start, reader.line_num + 1
                if lineno != reader.line_num:
                    raise DatasetError(f"{path}:{lineno}: a quoted field runs on to line {reader.line_num} (an "
                                       f"unclosed quote?); expected one row per line")
                if not any(v.strip() for v in fields):
                    continue
                if len(fields) == width > len(header) and not any(v.strip() for v in fields[len(header):]):
                    fields = fields[:len(header)]
                if len(fields) != len(header):
                    raise DatasetError(f"{path}:{lineno}: expected {len(header)} columns ({','.join(header)}), "
                                       f"found {len(fields)}: {excerpt(','.join(fields))}")
                rows.append((lineno, {c: v.strip() for c, v in zip(header, fields) if c}))
    except csv.Error as exc:
        hint = " (an unclosed quote?)" if "end of data" in str(exc) else ""
        raise DatasetError(f"{path}:{start}: malformed CSV row ({exc}){hint}; expected {layout}") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: {not_utf8(exc)}") from None
    if not rows:
        raise DatasetError(f"{path}: no rows after the header (expected {layout})")
    return header, rows


def image_root_for(list_file: Path, image_root: str | Path | None) -> Path:
    """The folder relative image paths of ``list_file`` are resolved against: ``image_root``, or the file's folder."""
    if image_root is None:
        return list_file.parent
    return require_dir(Path(image_root).expanduser(),
                       f"the folder the relative image paths of {list_file} are resolved against (image_root)")


def resolve_paths(listed: Sequence[str], image_root: Path, where: Sequence[str]) -> list[Path]:
    """``listed`` paths as files: absolute ones as written, relative ones under ``image_root``, which they must not
    leave (``..`` or a symbolic link leading out); every file must exist. ``where[i]`` names row ``i``'s line."""
    paths = [Path(p) if Path(p).is_absolute() else image_root / p for p in listed]
    check_images_exist(paths, lambda i: where[i])
    real_root = os.path.realpath(image_root)
    prefix = real_root.rstrip(os.sep) + os.sep
    for p, written, at in zip(paths, listed, where):
        if Path(written).is_absolute():
            continue
        real = os.path.realpath(p)
        if not real.startswith(prefix):
            via = f" (a symbolic link to {real})" if real != os.path.abspath(p) else ""
            raise DatasetError(f"{p}: image path is outside the dataset root {image_root}{via} (listed in {at}); "
                               f"expected a relative path inside the image root, or an absolute path")
    return paths


def list_source(name: str, paths: Sequence[Path], labels: np.ndarray, splits: Sequence[str], linenos: Sequence[int],
                raw_labels: Sequence[str], *, list_file: Path, image_size: int, resize: int, info: dict,
                hint: str = "") -> DataSource:
    """A ``DataSource`` from rows tagged with ``LIST_SPLITS``: ``train`` and ``test``, or ``train``, ``query`` and
    ``gallery`` (a query row is evaluated against the gallery rows), the training classes disjoint from the others.
    ``linenos[i]`` and ``raw_labels[i]`` are row ``i``'s line and label as written; ``hint`` ends the message of
    a class found on both sides."""
    splits = np.asarray(splits, dtype=object)
    present = [s for s in LIST_SPLITS if (splits == s).any()]
    if "test" in present and {"query", "gallery"} & set(present):
        other = next(s for s in ("query", "gallery") if s in present)
        raise DatasetError(f"{list_file}: rows with split test (line {linenos[int(np.argmax(splits == 'test'))]}) "
                           f"and {other} (line {linenos[int(np.argmax(splits == other))]}); expected train and test "
                           f"rows, or train, query and gallery rows")
    needed = ("train", "query", "gallery") if {"query", "gallery"} & set(present) else ("train", "test")
    for s in needed:
        if s not in present:
            raise DatasetError(f"{list_file}: no rows with split {s} (expected {', '.join(needed)} rows)")
    is_train = splits == "train"
    shared = np.intersect1d(labels[is_train], labels[~is_train])
    if len(shared):
        a = int(np.argmax(is_train & (labels == shared[0])))
        b = int(np.argmax(~is_train & (labels == shared[0])))
        raise DatasetError(f"{list_file}: label {raw_labels[a]!r} is in both splits (train at line {linenos[a]}, "
                           f"{splits[b]} at line {linenos[b]}; expected class-disjoint splits, {len(shared)} "
                           f"class(es) shared){hint}")

    def part(split: str):
        mask = splits == split
        return [p for p, m in zip(paths, mask) if m], labels[mask]

    if "test" in present:
        return files_source(name, part("train"), part("test"), image_size=image_size, resize=resize, info=info)
    query, gallery = part("query"), part("gallery")
    test = (query[0] + gallery[0], np.concatenate([query[1], gallery[1]]))
    return files_source(name, part("train"), test, query=query, gallery=gallery, image_size=image_size,
                        resize=resize, info={**info, "n_query": len(query[0]), "n_gallery": len(gallery[0])})


def with_test_categories(source: DataSource, categories: Sequence[object] | None, tags: Sequence[str]) -> DataSource:
    """``source`` with ``info["test_categories"]``: each test image's category, aligned with ``source.test`` (query
    rows first, then gallery rows), from the rows' ``categories`` and their tags (``LIST_SPLITS``; ``test`` for
    every non-training row of a test set evaluated against itself). ``None``: no categories, ``source`` as it is."""
    if categories is None:
        return source
    categories = np.asarray(categories, dtype=object)
    tags = np.asarray(tags, dtype=object)
    order = ("query", "gallery") if source.has_query_gallery else ("test",)
    source.info["test_categories"] = np.concatenate([categories[tags == t] for t in order])
    return source
