"""The ``features`` dataset: the user's own precomputed embeddings, from any model or domain.

``root`` is either an ``.npz`` file or a folder of ``.npy`` files, holding

* ``features``: ``N x D`` floating-point values (finite),
* ``labels``: ``N`` (or ``N x 1``) integer class ids, or class names (strings; ids in sorted order),
* ``split`` (optional): ``N`` values ``train``/``test`` (or ``0``/``1``); the two sides must be class-disjoint.
  Without it the first half of the sorted class ids trains (the CUB / Cars196 rule).

The whole protocol runs on them with the frozen regime implied: the "trunk" is the identity on the
features (each one a ``D x 1 x 1`` map), the embedder and the methods train on them. Every check raises
``DatasetError`` with one line naming the file and the key.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from benchmark.data.base import DataSource
from benchmark.data.splits import first_half_classes
from benchmark.data.tensor_sets import TensorSet
from benchmark.errors import DatasetError

FEATURES_LAYOUT = ("an .npz file or a folder of .npy files with 'features' (N x D float), 'labels' (N integers) "
                   "and an optional 'split' (train/test or 0/1)")
KEYS = ("features", "labels", "split")
SPLIT_WORDS = {"train": False, "test": True}


def _load_error(path: Path, key: str, exc: BaseException) -> DatasetError:
    """The one line for an array that cannot be read: pickled objects get their remedy."""
    if isinstance(exc, ValueError) and "allow_pickle" in str(exc):
        kind = "a floating-point" if key == "features" else "an integer or string"
        return DatasetError(f"{path}: key {key!r} holds Python objects (it would need pickle, which is not "
                            f"loaded); save {key} as {kind} array")
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return DatasetError(f"{path}: key {key!r} is not a readable array ({exc.__class__.__name__}"
                        f"{': ' + detail if detail else ''})")


_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError)


def _read_arrays(root: Path) -> tuple[dict[str, np.ndarray], dict[str, Path]]:
    """The arrays by key, and the file each one came from."""
    if root.is_dir():
        arrays, where = {}, {}
        for key in KEYS:
            path = root / f"{key}.npy"
            if path.is_file():
                try:
                    arrays[key] = np.load(path, allow_pickle=False)
                except _READ_ERRORS as exc:
                    raise _load_error(path, key, exc) from None
                if not isinstance(arrays[key], np.ndarray):
                    raise DatasetError(f"{path}: key {key!r} is an .npz archive, expected one .npy array")
                where[key] = path
        if "features" not in arrays and "labels" not in arrays:
            found = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))[:6]
            raise DatasetError(f"{root}: no features.npy or labels.npy found (found {found or 'nothing'}; "
                               f"expected {FEATURES_LAYOUT})")
        return arrays, where
    if not root.is_file():
        raise DatasetError(f"{root}: {'not a file or folder' if root.exists() else 'file not found'} "
                           f"(expected {FEATURES_LAYOUT})")
    try:
        data = np.load(root, allow_pickle=False)
    except _READ_ERRORS as exc:
        if isinstance(exc, ValueError) and "allow_pickle" in str(exc):  # a single .npy array of objects
            raise DatasetError(f"{root}: a single .npy array (of Python objects), not an .npz archive or a folder "
                               f"(expected {FEATURES_LAYOUT})") from None
        raise DatasetError(f"{root}: not a readable .npz archive ({exc.__class__.__name__}; expected "
                           f"{FEATURES_LAYOUT})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DatasetError(f"{root}: a single .npy array of shape {getattr(data, 'shape', '?')}, not an .npz archive "
                           f"or a folder (expected {FEATURES_LAYOUT}, e.g. np.savez(path, features=x, labels=y))")
    with data:
        arrays = {}
        for key in KEYS:
            if key in data.files:
                try:
                    arrays[key] = data[key]
                except _READ_ERRORS as exc:
                    raise _load_error(root, key, exc) from None
        if "features" not in arrays or "labels" not in arrays:
            missing = "features" if "features" not in arrays else "labels"
            raise DatasetError(f"{root}: key {missing!r} is missing (the archive holds "
                               f"{', '.join(repr(k) for k in data.files) or 'no arrays'}; expected {FEATURES_LAYOUT})")
    return arrays, {key: root for key in arrays}


def _features(arrays: dict, where: dict, root: Path) -> np.ndarray:
    if "features" not in arrays:
        raise DatasetError(f"{root}: key 'features' is missing (expected {FEATURES_LAYOUT})")
    x, path = arrays["features"], where["features"]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DatasetError(f"{path}: key 'features' must be a non-empty N x D array, found shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise DatasetError(f"{path}: key 'features' must hold floating-point values, found dtype {x.dtype}")
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise DatasetError(f"{path}: key 'features' holds {int(bad.sum())} NaN or infinite value(s), "
                           f"the first at row {row}, column {col}")
    with np.errstate(over="ignore"):
        out = x.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():  # finite in float64, beyond float32's range (about 3.4e38)
        row, col = map(int, np.argwhere(bad)[0])
        raise DatasetError(f"{path}: key 'features' holds {int(bad.sum())} value(s) beyond float32's range, the first "
                           f"{float(x[row, col]):.3g} at row {row}, column {col} (expected features of a usable scale)")
    return out


def _labels(arrays: dict, where: dict, root: Path, n: int) -> np.ndarray:
    if "labels" not in arrays:
        raise DatasetError(f"{root}: key 'labels' is missing (expected {FEATURES_LAYOUT})")
    y, path = arrays["labels"], where["labels"]
    if y.ndim == 2 and y.shape[1] == 1:  # a column (N x 1), as pandas and scikit-learn often give it
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise DatasetError(f"{path}: key 'labels' must hold one label per row of 'features' ({n}), "
                           f"found shape {y.shape}")
    if y.dtype.kind in "US":  # class names: ids in sorted order
        names = np.char.strip(y.astype(str))
        missing = np.flatnonzero((names == "") | np.isin(np.char.lower(names), ["nan", "none", "null", "na"]))
        if len(missing):
            raise DatasetError(f"{path}: key 'labels' holds {len(missing)} missing label(s) "
                               f"({str(names[missing[0]])!r} at row {int(missing[0])}); expected a class for every row")
        return np.unique(names, return_inverse=True)[1].astype(np.int64).reshape(-1)
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y)
        if bad.any():
            raise DatasetError(f"{path}: key 'labels' holds {int(bad.sum())} NaN or infinite label(s), the first at "
                               f"row {int(np.flatnonzero(bad)[0])}; expected an integer class id for every row")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{path}: key 'labels' must hold integers or class names, found dtype {y.dtype}")
    negative = np.flatnonzero(y < 0)
    if len(negative):
        first = int(negative[0])
        raise DatasetError(f"{path}: key 'labels' holds {len(negative)} negative label(s) ({int(y[first])} at row "
                           f"{first}; often a mark for unlabelled samples); expected class ids >= 0 "
                           f"(leave unlabelled samples out)")
    return y.astype(np.int64)


def _test_mask(arrays: dict, where: dict, labels: np.ndarray) -> np.ndarray:
    """True for the test samples."""
    if "split" not in arrays:
        return ~first_half_classes(labels)
    s, path = arrays["split"], where["split"]
    if s.ndim != 1 or len(s) != len(labels):
        raise DatasetError(f"{path}: key 'split' must hold one value per label ({len(labels)}), found shape {s.shape}")
    if s.dtype.kind in "US":
        words = np.char.lower(np.char.strip(s.astype(str)))
        unknown = sorted(set(words.tolist()) - set(SPLIT_WORDS))
        if unknown:
            raise DatasetError(f"{path}: key 'split' holds {unknown[:3]} (expected 'train' or 'test', or 0/1)")
        mask = words == "test"
    elif np.issubdtype(s.dtype, np.integer) or s.dtype == bool:
        unknown = sorted(set(np.unique(s.astype(np.int64)).tolist()) - {0, 1})
        if unknown:
            raise DatasetError(f"{path}: key 'split' holds {unknown[:3]} (expected 0 = train, 1 = test, "
                               f"or 'train'/'test')")
        mask = s.astype(bool)
    else:
        raise DatasetError(f"{path}: key 'split' must hold 'train'/'test' or 0/1, found dtype {s.dtype}")
    shared = np.intersect1d(labels[mask], labels[~mask])
    if len(shared):
        raise DatasetError(f"{path}: keys 'split' and 'labels' put {len(shared)} class(es) on both sides, "
                           f"e.g. {shared[:5].tolist()} (expected class-disjoint train and test)")
    return mask


def load_features(root: str | Path) -> DataSource:
    """The features dataset at ``root`` (see the module docstring)."""
    root = Path(root)
    arrays, where = _read_arrays(root)
    x = _features(arrays, where, root)
    y = _labels(arrays, where, root, len(x))
    test = _test_mask(arrays, where, y)
    label_file = where["labels"]
    for side, mask in (("train", ~test), ("test", test)):
        classes, counts = np.unique(y[mask], return_counts=True)
        if len(classes) < 2 or counts.max(initial=0) < 2:
            raise DatasetError(f"{label_file}: key 'labels' gives the {side} side {len(classes)} class(es) and at "
                               f"most {counts.max(initial=0)} sample(s) per class (expected at least 2 classes "
                               f"with 2 or more samples)")

    def tensor_set(mask: np.ndarray) -> TensorSet:
        return TensorSet(torch.from_numpy(np.ascontiguousarray(x[mask]))[:, :, None, None], y[mask])

    return DataSource(name="features", train=tensor_set(~test), test=tensor_set(test),
                      train_transform=None, eval_transform=None,
                      info={"features": True, "path": str(label_file), "dim": int(x.shape[1])})
