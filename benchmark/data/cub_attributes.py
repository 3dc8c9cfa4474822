"""CUB-200-2011's official attribute files, the second modality of ``cub200`` (attribute <-> image retrieval).

Read from the official layout (``<base>`` is the ``CUB_200_2011`` folder; ``attributes.txt`` is looked for in
``<base>/attributes/`` and, as the official archive ships it, beside ``<base>``):

* ``attributes/attributes.txt``: ``<attribute_id> <name>``, ids 1..K (312 in the official files);
* ``attributes/class_attribute_labels_continuous.txt``: one line per class (class ids 1..200 in line order),
  K percentages in [0, 100] (how often annotators marked the attribute present for the class);
* ``attributes/image_attribute_labels.txt``: ``<image_id> <attribute_id> <is_present> <certainty_id> <time>``
  per image and attribute (is_present 0/1, certainty 1..4; a handful of official lines carry one field more,
  accepted).

``read_cub_attributes`` returns the class vectors (fractions in [0, 1]) and, when asked, the per-image 0/1
vectors; every malformed line raises ``DatasetError`` naming the file and line. ``cub_attribute_modality``
turns them into a ``SecondModality`` for a loaded ``cub200`` source: ``class_attributes`` (one vector per
class, the classic zero-shot setting) or ``attributes`` (one per image, as annotated).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from benchmark.data.files import excerpt, parse_int, read_text_lines, require_file
from benchmark.data.base import DataSource
from benchmark.data.paired import PAIRED, SecondModality
from benchmark.data.tensor_sets import TensorSet
from benchmark.errors import DatasetError

CUB_ATTRIBUTE_MODALITIES = ("class_attributes", "attributes")


@dataclass
class CubAttributes:
    names: list[str]
    #: ``classes x K`` fractions in [0, 1]; row ``c - 1`` is class ``c``.
    class_values: np.ndarray
    #: Image ids (sorted) and their ``len(image_ids) x K`` 0/1 vectors; None unless asked for.
    image_ids: Optional[np.ndarray] = None
    image_values: Optional[np.ndarray] = None


def attributes_file(base: Path) -> Path:
    """``attributes.txt``: in ``<base>/attributes/``, else beside ``<base>`` (the official archive's place)."""
    inside, beside = base / "attributes" / "attributes.txt", base.parent / "attributes.txt"
    return beside if not inside.exists() and beside.exists() else inside


def _names(path: Path) -> list[str]:
    require_file(path, "CUB's attributes.txt ('<attribute_id> <name>' lines)")
    names: list[str] = []
    for lineno, line in enumerate(read_text_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DatasetError(f"{path}:{lineno}: expected 2 columns (attribute_id name), found {len(fields)}: "
                               f"{excerpt(line)}")
        aid = parse_int(path, lineno, "attribute_id", fields[0])
        if aid != len(names) + 1:
            raise DatasetError(f"{path}:{lineno}: expected attribute id {len(names) + 1} (ids 1, 2, ... in order), "
                               f"found {aid}")
        names.append(fields[1])
    if not names:
        raise DatasetError(f"{path}: no attributes listed (expected '<attribute_id> <name>' lines)")
    return names


def _float(path: Path, lineno: int, column: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DatasetError(f"{path}:{lineno}: expected a number {column}, found {excerpt(value)}") from None
    if not np.isfinite(x):
        raise DatasetError(f"{path}:{lineno}: expected a finite number {column}, found {excerpt(value)}")
    return x


def _class_values(path: Path, k: int) -> np.ndarray:
    require_file(path, f"CUB's class_attribute_labels_continuous.txt (one line per class, {k} percentages)")
    rows = []
    for lineno, line in enumerate(read_text_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != k:
            raise DatasetError(f"{path}:{lineno}: expected {k} values (one per attribute of attributes.txt), "
                               f"found {len(fields)}")
        values = [_float(path, lineno, f"(attribute {j + 1})", v) for j, v in enumerate(fields)]
        bad = next((j for j, v in enumerate(values) if not 0.0 <= v <= 100.0), None)
        if bad is not None:
            raise DatasetError(f"{path}:{lineno}: attribute {bad + 1} is {values[bad]}, expected a percentage "
                               f"in [0, 100]")
        rows.append(values)
    if not rows:
        raise DatasetError(f"{path}: no rows (expected one line of {k} percentages per class)")
    return np.asarray(rows, dtype=np.float32) / 100.0


def _image_values(path: Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    require_file(path, "CUB's image_attribute_labels.txt ('<image_id> <attribute_id> <is_present> "
                       "<certainty_id> <time>' lines)")
    values: dict[int, np.ndarray] = {}
    seen: dict[tuple[int, int], int] = {}
    for lineno, line in enumerate(read_text_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (5, 6):
            raise DatasetError(f"{path}:{lineno}: expected 5 columns (image_id attribute_id is_present "
                               f"certainty_id time), found {len(fields)}: {excerpt(line)}")
        iid = parse_int(path, lineno, "image_id", fields[0])
        aid = parse_int(path, lineno, "attribute_id", fields[1])
        present = parse_int(path, lineno, "is_present", fields[2])
        certainty = parse_int(path, lineno, "certainty_id", fields[3])
        if not 1 <= aid <= k:
            raise DatasetError(f"{path}:{lineno}: attribute id {aid} is not in attributes.txt (ids 1..{k})")
        if present not in (0, 1) or not 1 <= certainty <= 4:
            raise DatasetError(f"{path}:{lineno}: expected is_present 0 or 1 and certainty_id 1..4, found "
                               f"{present} and {certainty}")
        if (iid, aid) in seen:
            raise DatasetError(f"{path}:{lineno}: image {iid}, attribute {aid} is listed twice (first at line "
                               f"{seen[(iid, aid)]})")
        seen[(iid, aid)] = lineno
        values.setdefault(iid, np.zeros(k, dtype=np.float32))[aid - 1] = present
    if not values:
        raise DatasetError(f"{path}: no rows (expected '<image_id> <attribute_id> <is_present> <certainty_id> "
                           f"<time>' lines)")
    ids = np.array(sorted(values), dtype=np.int64)
    return ids, np.stack([values[i] for i in ids.tolist()])


def read_cub_attributes(base: str | Path, *, per_image: bool = False) -> CubAttributes:
    """The attribute files of the ``CUB_200_2011`` folder ``base`` (see the module docstring)."""
    base = Path(base)
    names = _names(attributes_file(base))
    out = CubAttributes(names, _class_values(base / "attributes" / "class_attribute_labels_continuous.txt",
                                             len(names)))
    if per_image:
        out.image_ids, out.image_values = _image_values(base / "attributes" / "image_attribute_labels.txt",
                                                        len(names))
    return out


def cub_attribute_modality(kind: str, base: Path, train_labels: np.ndarray, test_labels: np.ndarray,
                           image_ids: Optional[np.ndarray] = None, image_labels: Optional[np.ndarray] = None,
                           ) -> SecondModality:
    """The ``kind`` attribute vectors (``CUB_ATTRIBUTE_MODALITIES``) of the classes in ``train_labels`` and
    ``test_labels`` (class ids 1..200). ``attributes`` needs every image's id and label (``image_ids``,
    ``image_labels``: from ``images.txt`` and ``image_class_labels.txt``)."""
    if kind not in CUB_ATTRIBUTE_MODALITIES:
        raise DatasetError(f"unknown CUB attribute modality {kind!r} (expected one of "
                           f"{', '.join(CUB_ATTRIBUTE_MODALITIES)})")
    attrs = read_cub_attributes(base, per_image=kind == "attributes")
    n = len(attrs.class_values)
    classes = np.unique(np.concatenate([train_labels, test_labels]))
    if classes.min() < 1 or classes.max() > n:
        path = base / "attributes" / "class_attribute_labels_continuous.txt"
        raise DatasetError(f"{path}: has {n} class rows, but the images' classes reach {int(classes.max())}")
    if kind == "class_attributes":
        values, labels = attrs.class_values[classes - 1], classes
    else:
        if image_ids is None or image_labels is None:
            raise DatasetError(f"{base}: per-image attributes need images.txt and image_class_labels.txt")
        known = np.isin(image_ids, attrs.image_ids)
        if not known.all():
            missing = int(image_ids[~known][0])
            raise DatasetError(f"{base / 'attributes' / 'image_attribute_labels.txt'}: image {missing} has no "
                               f"attribute rows")
        rows = np.searchsorted(attrs.image_ids, image_ids)
        values, labels = attrs.image_values[rows], np.asarray(image_labels, dtype=np.int64)
    train = np.isin(labels, np.unique(train_labels))

    def tensor_set(mask: np.ndarray) -> TensorSet:
        return TensorSet(torch.from_numpy(np.ascontiguousarray(values[mask], dtype=np.float32)), labels[mask])

    return SecondModality("image", "attributes", tensor_set(train), tensor_set(~train))


def _image_ids(base: Path, paths: list[Path]) -> np.ndarray:
    """The ids of ``paths`` (files under ``<base>/images``) in ``images.txt``."""
    images_txt = require_file(base / "images.txt", "CUB's images.txt ('<image_id> <NNN.name>/<file>.jpg' lines), "
                                                   "which per-image attributes are indexed by")
    ids = {}
    for lineno, line in enumerate(read_text_lines(images_txt), 1):
        fields = line.split()
        if len(fields) == 2:
            ids[str(Path(fields[1]))] = parse_int(images_txt, lineno, "image_id", fields[0])
    images = base / "images"
    return np.array([ids[str(Path(p).relative_to(images))] for p in paths], dtype=np.int64)


def load_cub200_paired(root: str | Path, *, second_modality: Optional[str] = None, **options) -> DataSource:
    """``load_cub200(root, **options)`` with its attribute modality ``second_modality`` (see the module
    docstring) when one is named."""
    from benchmark.data.cub import load_cub200

    source = load_cub200(root, **options)
    if second_modality is None:
        return source
    base = Path(source.info["root"])
    train, test = source.train, source.test
    ids = labels = None
    if second_modality == "attributes":
        ids = _image_ids(base, list(train.paths) + list(test.paths))
        labels = np.concatenate([train.labels, test.labels])
    source.info[PAIRED] = cub_attribute_modality(second_modality, base, train.labels, test.labels, ids, labels)
    return source
