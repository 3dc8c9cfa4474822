"""The ``features`` dataset: the user's own precomputed embeddings, from any model or domain.

``root`` is either an ``.npz`` file or a folder of ``.npy`` files, holding

* ``features``: ``N x D`` floating-point values (finite),
* ``labels``: ``N`` integer class ids,
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


def _read_arrays(root: Path) -> tuple[dict[str, np.ndarray], dict[str, Path]]:
    """The arrays by key, and the file each one came from."""
    if root.is_dir():
        arrays, where = {}, {}
        for key in KEYS:
            path = root / f"{key}.npy"
            if path.is_file():
                try:
                    arrays[key] = np.load(path, allow_pickle=False)
                except (OSError, ValueError, EOFError) as exc:
                    raise DatasetError(f"{path}: not a readable .npy array ({exc.__class__.__name__}: "
                                       f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
                where[key] = path
        if "features" not in arrays and "labels" not in arrays:
            raise DatasetError(f"{root}: no features.npy or labels.npy found (expected {FEATURES_LAYOUT})")
        return arrays, where
    if not root.is_file():
        raise DatasetError(f"{root}: file not found (expected {FEATURES_LAYOUT})")
    try:
        with np.load(root, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise DatasetError(f"{root}: a single array, not an .npz archive (expected {FEATURES_LAYOUT})")
            arrays = {key: data[key] for key in KEYS if key in data.files}
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{root}: not a readable .npz archive ({exc.__class__.__name__})") from None
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
    return x.astype(np.float32)


def _labels(arrays: dict, where: dict, root: Path, n: int) -> np.ndarray:
    if "labels" not in arrays:
        raise DatasetError(f"{root}: key 'labels' is missing (expected {FEATURES_LAYOUT})")
    y, path = arrays["labels"], where["labels"]
    if y.ndim != 1 or len(y) != n:
        raise DatasetError(f"{path}: key 'labels' must hold one label per row of 'features' ({n}), "
                           f"found shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{path}: key 'labels' must hold integers, found dtype {y.dtype}")
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
