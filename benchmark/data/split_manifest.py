"""Split manifests: what a dataset's DML split holds, recorded once and checked whenever the dataset is loaded.

A manifest records, for each part of a split (``train``, ``test``, and ``query``/``gallery`` where the dataset
has them), its number of images and classes and, when written from the data, the number of images of every
class and a SHA-256 checksum of the sorted list of ``label<TAB>path`` lines (paths relative to the dataset's
root, so a copy elsewhere has the same checksum). ``check_split`` compares a loaded dataset with a manifest and
names the first difference in one line: a part's total, then a class's count (a file missing or extra in that
class), then the checksum (files renamed or replaced, counts unchanged).

Two sources of manifests:

* ``split_manifests.json`` (checked in beside this module) holds the *published* totals of CUB-200-2011,
  Cars196, SOP and In-shop. It was written without the data, so it has no per-class counts (the published
  descriptions do not give them) and no checksums: it tells a complete copy from a subset or a copy with files
  missing or extra overall, not which files. These totals are checked by default.
* ``dml-bench prepare --write-manifest DIR`` records the full manifest (per-class counts and checksums) of a copy
  the user trusts; others check theirs against it with ``datasets[].split_manifest``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from benchmark.data.base import DataSource, FileImageSet
from benchmark.errors import DatasetError

FORMAT = "dml-bench split manifest 1"
PUBLISHED_FILE = Path(__file__).with_name("split_manifests.json")


def _parts(source: DataSource) -> dict[str, FileImageSet]:
    names = ("train", "test", "query", "gallery") if source.has_query_gallery else ("train", "test")
    return {n: getattr(source, n) for n in names}


def _root(source: DataSource) -> Optional[Path]:
    root = source.info.get("root") or source.info.get("image_root")
    return Path(root) if root else None


def _relative(path: Path, root: Optional[Path]) -> str:
    """``path`` relative to ``root`` with ``/`` between folders (as written when it lies elsewhere)."""
    if root is not None:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
        if not rel.startswith(".." + os.sep) and rel != "..":
            return Path(rel).as_posix()
    return Path(path).as_posix()


def describe(source: DataSource) -> dict[str, Any]:
    """The full manifest entry of a dataset of image files: per part its images, classes, images per class and
    the checksum of its sorted ``label<TAB>relative path`` lines."""
    root = _root(source)
    parts = {}
    for name, images in _parts(source).items():
        if not isinstance(images, FileImageSet):
            raise DatasetError(f"dataset {source.name!r} is not read from image files; a split manifest describes "
                               f"image files only")
        lines = sorted(f"{int(label)}\t{_relative(p, root)}\n" for p, label in zip(images.paths, images.labels))
        counts = Counter(int(label) for label in images.labels)
        parts[name] = {"images": len(images), "classes": len(counts),
                       "per_class": {str(c): counts[c] for c in sorted(counts)},
                       "sha256": hashlib.sha256("".join(lines).encode()).hexdigest()}
    return {"parts": parts}


def read_manifest(path: Path) -> dict[str, Any]:
    """The ``datasets`` mapping of a manifest file, checked for its format; one line naming the file otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: split manifest not found (expected a file written by dml-bench prepare "
                           f"--write-manifest)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable split manifest ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("datasets"), dict):
        raise DatasetError(f"{path}: not a split manifest (expected JSON with format {FORMAT!r} and a datasets "
                           f"mapping)")
    for name, entry in data["datasets"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("parts"), dict) or not all(
                isinstance(p, dict) and isinstance(p.get("images"), int) for p in entry["parts"].values()):
            raise DatasetError(f"{path}: dataset {name!r}: expected parts, each with an integer images count")
    return data["datasets"]


def published(name: str) -> Optional[dict[str, Any]]:
    """The checked-in published entry of dataset ``name`` (``None`` for a dataset it does not list)."""
    return read_manifest(PUBLISHED_FILE).get(name)


def manifest_document(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A manifest file's content holding ``entries`` (dataset key -> ``describe`` output)."""
    return {"format": FORMAT, "datasets": entries}


def check_split(source: DataSource, expected: dict[str, Any], *, what: str) -> None:
    """``source`` holds what ``expected`` (a manifest entry) records, else one line naming the first difference;
    ``what`` names the manifest in it (e.g. ``the published split (split_manifests.json)``)."""
    actual = describe(source)["parts"]
    for part, want in expected["parts"].items():
        have = actual.get(part)
        if have is None:
            raise DatasetError(f"has no {part} images, but {what} records {want['images']}")
        per_class = want.get("per_class")  # (the most precise first: which class has a file missing or extra)
        if per_class is not None:
            for label in sorted(set(per_class) | set(have["per_class"]), key=_class_order):
                n, m = have["per_class"].get(label, 0), per_class.get(label, 0)
                if n != m:
                    more = "extra" if n > m else "missing"
                    raise DatasetError(f"{part} class {label} has {n} images, {what} records {m} "
                                       f"({abs(n - m)} {more})")
        if have["images"] != want["images"]:
            more = "extra" if have["images"] > want["images"] else "missing"
            raise DatasetError(f"{part} has {have['images']} images, {what} records {want['images']} "
                               f"({abs(have['images'] - want['images'])} {more})")
        if want.get("classes") is not None and have["classes"] != want["classes"]:
            raise DatasetError(f"{part} has {have['classes']} classes, {what} records {want['classes']}")
        if want.get("sha256") is not None and have["sha256"] != want["sha256"]:
            raise DatasetError(f"{part}'s sorted file list has checksum {have['sha256'][:12]}..., {what} records "
                               f"{want['sha256'][:12]}... (the same counts: files renamed, moved between classes or "
                               f"replaced)")


def _class_order(label: str):
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)



#: How a refusal ends: what to do with a copy that is meant to differ.
SUBSET_HINT = "expected a complete copy (set the dataset's verify_split: false to load a subset or a test fixture)"


def verify_loaded(source: DataSource, *, dataset: str, key: str, manifest: Optional[str | Path] = None) -> None:
    """Check a loaded dataset against ``manifest`` (a file written by ``--write-manifest``: its entry ``key``, or
    ``dataset``), else against the published totals of ``dataset`` (nothing to check for a dataset not listed).
    One line: ``dataset 'cub200': train has 5863 images, ... records 5864 (1 missing); expected ...``."""
    if manifest is not None:
        entries = read_manifest(Path(manifest).expanduser())
        entry = entries.get(key, entries.get(dataset))
        if entry is None:
            raise DatasetError(f"{manifest}: the split manifest records no dataset {key!r} (it records "
                               f"{', '.join(map(repr, entries)) or 'none'})")
        what = f"the split manifest {manifest}"
    else:
        entry = published(dataset)
        if entry is None:
            return
        what = f"the published split ({PUBLISHED_FILE.name})"
    try:
        check_split(source, entry, what=what)
    except DatasetError as exc:
        raise DatasetError(f"dataset {key!r}: {exc}; {SUBSET_HINT}") from None
