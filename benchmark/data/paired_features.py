"""The ``paired_features`` dataset: two modalities' precomputed embeddings over the same classes.

For embeddings computed elsewhere, e.g. an image tower's and a text tower's outputs, ``root`` is an
``.npz`` file holding

* ``features_a`` (``N x D_a`` floats) and ``labels_a`` (``N`` integer class ids): modality A,
* ``features_b`` (``M x D_b`` floats) and ``labels_b`` (``M``): modality B, over exactly the same classes,
* ``split_a``, ``split_b`` (optional, both or neither): ``train``/``test`` (or 0/1) per item; a class is on
  one side in both modalities. Without them the first half of the sorted class ids trains.

Modality A becomes the ``DataSource``'s samples (one ``D_a x 1 x 1`` map each, as a ``features`` dataset's),
modality B its ``SecondModality`` (``benchmark.data.paired``). Every check raises ``DatasetError`` with one
line naming the file and the key; nothing is computed before the whole file has been checked.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from benchmark.data.base import DataSource
from benchmark.data.paired import PAIRED, SecondModality, check_same_classes
from benchmark.data.splits import first_half_classes
from benchmark.data.tensor_sets import TensorSet
from benchmark.errors import DatasetError

PAIRED_FEATURES_LAYOUT = ("an .npz file with 'features_a' (N x D float), 'labels_a' (N integers), 'features_b' "
                          "(M x E float), 'labels_b' (M integers) over the same classes, and optional 'split_a', "
                          "'split_b' (train/test or 0/1)")
REQUIRED = ("features_a", "labels_a", "features_b", "labels_b")
OPTIONAL = ("split_a", "split_b")


def _read(root: Path) -> dict[str, np.ndarray]:
    if not root.is_file():
        raise DatasetError(f"{root}: {'not a file' if root.exists() else 'file not found'} "
                           f"(expected {PAIRED_FEATURES_LAYOUT})")
    try:
        data = np.load(root, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{root}: not a readable .npz archive ({exc.__class__.__name__}; expected "
                           f"{PAIRED_FEATURES_LAYOUT})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DatasetError(f"{root}: a single .npy array, not an .npz archive (expected {PAIRED_FEATURES_LAYOUT})")
    with data:
        missing = [k for k in REQUIRED if k not in data.files]
        if missing:
            raise DatasetError(f"{root}: key {missing[0]!r} is missing (the archive holds "
                               f"{', '.join(repr(k) for k in data.files) or 'no arrays'}; expected "
                               f"{PAIRED_FEATURES_LAYOUT})")
        out = {}
        for key in REQUIRED + OPTIONAL:
            if key in data.files:
                try:
                    out[key] = data[key]
                except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                    why = "holds Python objects (save a numeric array)" if "allow_pickle" in str(exc) else \
                        f"is not a readable array ({exc.__class__.__name__})"
                    raise DatasetError(f"{root}: key {key!r} {why}") from None
    if ("split_a" in out) != ("split_b" in out):
        given = "split_a" if "split_a" in out else "split_b"
        raise DatasetError(f"{root}: key {given!r} is given without its partner (expected both split_a and "
                           f"split_b, or neither)")
    return out


def _features(root: Path, key: str, x: np.ndarray) -> np.ndarray:
    if x.ndim != 2 or 0 in x.shape:
        raise DatasetError(f"{root}: key {key!r} must be a non-empty N x D array, found shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise DatasetError(f"{root}: key {key!r} must hold floating-point values, found dtype {x.dtype}")
    with np.errstate(over="ignore"):
        out = x.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise DatasetError(f"{root}: key {key!r} holds {int(bad.sum())} NaN, infinite or beyond-float32 value(s), "
                           f"the first at row {row}, column {col}")
    return out


def _labels(root: Path, key: str, y: np.ndarray, n: int, features: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise DatasetError(f"{root}: key {key!r} must hold one label per row of {features!r} ({n}), "
                           f"found shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{root}: key {key!r} must hold integer class ids, found dtype {y.dtype}")
    if (y < 0).any():
        first = int(np.flatnonzero(y < 0)[0])
        raise DatasetError(f"{root}: key {key!r} holds negative label(s) (first at row {first}); expected class "
                           f"ids >= 0")
    return y.astype(np.int64)


def _test_mask(root: Path, key: str, s: np.ndarray, n: int) -> np.ndarray:
    if s.ndim != 1 or len(s) != n:
        raise DatasetError(f"{root}: key {key!r} must hold one value per label ({n}), found shape {s.shape}")
    if s.dtype.kind in "US":
        words = np.char.lower(np.char.strip(s.astype(str)))
        unknown = sorted(set(words.tolist()) - {"train", "test"})
        if unknown:
            raise DatasetError(f"{root}: key {key!r} holds {unknown[:3]} (expected 'train' or 'test', or 0/1)")
        return words == "test"
    if np.issubdtype(s.dtype, np.integer) or s.dtype == bool:
        unknown = sorted(set(np.unique(s.astype(np.int64)).tolist()) - {0, 1})
        if unknown:
            raise DatasetError(f"{root}: key {key!r} holds {unknown[:3]} (expected 0 = train, 1 = test)")
        return s.astype(bool)
    raise DatasetError(f"{root}: key {key!r} must hold 'train'/'test' or 0/1, found dtype {s.dtype}")


def load_paired_features(root: str | Path) -> DataSource:
    """The paired-features dataset at ``root`` (see the module docstring)."""
    root = Path(root)
    arrays = _read(root)
    xa = _features(root, "features_a", arrays["features_a"])
    xb = _features(root, "features_b", arrays["features_b"])
    ya = _labels(root, "labels_a", arrays["labels_a"], len(xa), "features_a")
    yb = _labels(root, "labels_b", arrays["labels_b"], len(xb), "features_b")
    check_same_classes(ya, yb, f"{root}: keys 'labels_a' and 'labels_b'", "", ("A", "B"))
    if "split_a" in arrays:
        test_a = _test_mask(root, "split_a", arrays["split_a"], len(ya))
        test_b = _test_mask(root, "split_b", arrays["split_b"], len(yb))
        labels, test = np.concatenate([ya, yb]), np.concatenate([test_a, test_b])
        shared = np.intersect1d(labels[test], labels[~test])
        if len(shared):
            raise DatasetError(f"{root}: keys 'split_a' and 'split_b' put {len(shared)} class(es) on both sides, "
                               f"e.g. {shared[:5].tolist()} (expected each class on one side in both modalities)")
    else:
        train_a = first_half_classes(ya)
        train_classes = np.unique(ya[train_a])
        test_a, test_b = ~train_a, ~np.isin(yb, train_classes)
    for side, mask in (("train", ~test_a), ("test", test_a)):
        classes, counts = np.unique(ya[mask], return_counts=True)
        if len(classes) < 2 or counts.max(initial=0) < 2:
            raise DatasetError(f"{root}: key 'labels_a' gives the {side} side {len(classes)} class(es) and at most "
                               f"{counts.max(initial=0)} sample(s) per class (expected at least 2 classes with 2 "
                               f"or more samples)")

    def tensor_set(x: np.ndarray, y: np.ndarray, mask: np.ndarray, maps: bool) -> TensorSet:
        values = torch.from_numpy(np.ascontiguousarray(x[mask]))
        return TensorSet(values[:, :, None, None] if maps else values, y[mask])

    second = SecondModality("a", "b", tensor_set(xb, yb, ~test_b, False), tensor_set(xb, yb, test_b, False))
    return DataSource(name="paired_features", train=tensor_set(xa, ya, ~test_a, True),
                      test=tensor_set(xa, ya, test_a, True), train_transform=None, eval_transform=None,
                      info={"features": True, "path": str(root), "dim": int(xa.shape[1]), PAIRED: second})
