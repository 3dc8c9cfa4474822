"""Class-disjoint splits, one pure function for every dataset.

Train/test: a dataset's standard rule (``first_half_classes`` for CUB-200-2011 and Cars196, the
official files for SOP and In-shop). Cross-validation: ``class_disjoint_folds`` gives the
``n_folds`` validation blocks of the training classes (``protocol.fold_mode``):

* ``contiguous``: near-equal blocks of the sorted class ids (the reference code's documented split);
* ``shuffled``: the same block sizes over a permutation drawn from the seed;
* ``mlrc``: the reality-check code's exact-reproduction split (``MLRCSplitManager``, test size 1/2).
  With C the number of classes of the whole dataset (train + test) and T the training classes,
  each validation block holds ``v = int(C / (2 n_folds))`` classes (``int(0.125 C)`` for 4 folds);
  fold k starts at ``s_k = int(k T / n_folds)`` and validates on the sorted training classes at
  positions ``s_k - v .. s_k - 1`` (wrapping around: fold 0 validates on the last v). Our reading of
  that code: its train block of ``T - v`` classes starts at ``s_k`` and the validation block follows
  it, wrapped. CUB (C = 200): blocks of 25 covering all 100 classes, in the order 76-100, 1-25,
  26-50, 51-75. Cars (C = 196): blocks of 24; positions 24 and 73 (classes 25 and 74) are never
  validated. SOP (official split, T = 11,318 of C = 22,634): blocks of 2,829, two classes never
  validated (the reference code split SOP by the first half of its class ids, T = 11,317).

``make_splits`` combines both and checks that no class is shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from benchmark.errors import ConfigError, DatasetError

FOLD_MODES = ("contiguous", "shuffled", "mlrc")
#: Classes each validation block (and the test set) needs: the verification threshold is chosen on
#: pairs of different classes, and MAP@R on one class is 1 whatever the model.
MIN_VAL_CLASSES = 2


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: indices into the training set."""

    index: int
    train_indices: np.ndarray
    val_indices: np.ndarray
    train_classes: np.ndarray
    val_classes: np.ndarray


@dataclass(frozen=True)
class Splits:
    """The folds of the training classes, and the test classes."""

    folds: tuple[Fold, ...]
    train_classes: np.ndarray
    test_classes: np.ndarray


def first_half_classes(labels: Sequence[int]) -> np.ndarray:
    """Boolean mask of the samples whose class is in the first half of the sorted class ids.

    The CUB-200-2011 / Cars196 rule: classes 1..C/2 train, C/2+1..C test.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise DatasetError(f"need at least 2 classes to split train/test, found {len(classes)}")
    return np.isin(labels, classes[: len(classes) // 2])


def class_disjoint_folds(classes: Sequence[int], n_folds: int, *, mode: str = "contiguous",
                         seed: int = 0, n_all_classes: Optional[int] = None) -> list[np.ndarray]:
    """The ``n_folds`` validation blocks of ``classes`` (the training classes), by ``mode``.

    ``contiguous``: near-equal blocks of the sorted class ids (fold 0 validates on the first block).
    ``shuffled``: the same block sizes over a permutation drawn from ``seed``.
    ``mlrc``: the reality-check code's blocks (see the module docstring); ``n_all_classes`` is the
    dataset's number of classes, train and test (default: twice the training classes).
    """
    if mode not in FOLD_MODES:
        raise ConfigError(f"unknown fold mode {mode!r} (expected one of {FOLD_MODES})")
    classes = np.unique(np.asarray(classes))
    if n_folds < 2:
        raise ConfigError(f"n_folds must be at least 2, got {n_folds}")
    if len(classes) < MIN_VAL_CLASSES * n_folds:
        raise DatasetError(f"{len(classes)} training classes cannot make {n_folds} class-disjoint folds of at least "
                           f"{MIN_VAL_CLASSES} validation classes each (expected protocol.n_folds / --folds at most "
                           f"{max(len(classes) // MIN_VAL_CLASSES, 1)})")
    if mode == "mlrc":
        return mlrc_blocks(classes, n_folds, 2 * len(classes) if n_all_classes is None else n_all_classes)
    if mode == "shuffled":
        classes = np.random.default_rng(seed).permutation(classes)
    return [np.sort(block) for block in np.array_split(classes, n_folds)]


def mlrc_blocks(classes: np.ndarray, n_folds: int, n_all_classes: int) -> list[np.ndarray]:
    """``MLRCSplitManager``'s validation blocks of the sorted training ``classes`` (module docstring)."""
    n = len(classes)
    size = n_all_classes // (2 * n_folds)
    if not 1 <= size < n:
        raise DatasetError(f"fold_mode mlrc: {n} training classes of {n_all_classes} give validation blocks of "
                           f"{size} classes; need at least 1 and fewer than the training classes")
    blocks = []
    for k in range(n_folds):
        start = (k * n) // n_folds
        blocks.append(np.sort(classes[(start - size + np.arange(size)) % n]))
    return blocks


def make_splits(train_labels: Sequence[int], test_labels: Sequence[int], *, n_folds: int = 4,
                mode: str = "contiguous", seed: int = 0) -> Splits:
    """Folds over the training set's classes and the test classes, checked to be class-disjoint."""
    train_labels = np.asarray(train_labels)
    test_labels = np.asarray(test_labels)
    train_classes = np.unique(train_labels)
    test_classes = np.unique(test_labels)
    shared = np.intersect1d(train_classes, test_classes)
    if len(shared):
        raise DatasetError(f"train and test share {len(shared)} class(es), e.g. {shared[:5].tolist()}")
    folds = []
    blocks = class_disjoint_folds(train_classes, n_folds, mode=mode, seed=seed,
                                  n_all_classes=len(train_classes) + len(test_classes))
    for i, val_classes in enumerate(blocks):
        fold_train_classes = np.setdiff1d(train_classes, val_classes)
        val_mask = np.isin(train_labels, val_classes)
        fold = Fold(i, np.flatnonzero(~val_mask), np.flatnonzero(val_mask), fold_train_classes, val_classes)
        _check_fold(fold, train_labels, test_classes)
        folds.append(fold)
    return Splits(tuple(folds), train_classes, test_classes)


def _check_fold(fold: Fold, train_labels: np.ndarray, test_classes: np.ndarray) -> None:
    seen_train = np.unique(train_labels[fold.train_indices])
    seen_val = np.unique(train_labels[fold.val_indices])
    for a, b, what in ((seen_train, seen_val, "train and validation"),
                       (seen_train, test_classes, "train and test"),
                       (seen_val, test_classes, "validation and test")):
        shared = np.intersect1d(a, b)
        if len(shared):
            raise DatasetError(f"fold {fold.index}: {what} share classes {shared[:5].tolist()}")
    if len(fold.train_indices) == 0 or len(fold.val_indices) == 0:
        raise DatasetError(f"fold {fold.index} has an empty train or validation set")


def check_evaluable(splits: Splits, train_labels: Sequence[int], test_labels: Sequence[int]) -> None:
    """Each validation set and the test set can be evaluated: retrieval and verification need 2 classes and a
    class of 2 or more images (a query with a match); DatasetError naming the set otherwise."""
    train_labels = np.asarray(train_labels)
    _check_evaluable(np.asarray(test_labels), "the test set")
    for fold in splits.folds:
        _check_evaluable(train_labels[fold.val_indices], f"the validation set of fold {fold.index}")


def _check_evaluable(labels: np.ndarray, what: str) -> None:
    classes, counts = np.unique(labels, return_counts=True)
    remedy = "more images per class" if what == "the test set" else "fewer folds, or more images per class"
    if len(classes) < MIN_VAL_CLASSES or counts.max(initial=0) < 2:
        raise DatasetError(f"{what} has {len(classes)} class(es) with at most {counts.max(initial=0)} image(s) "
                           f"each; expected at least {MIN_VAL_CLASSES} classes and one with 2 or more images "
                           f"({remedy})")
