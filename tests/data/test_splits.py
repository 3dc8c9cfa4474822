"""Class-disjoint splits (``benchmark.data.splits``): train/test rule, folds, and their checks."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.splits import class_disjoint_folds, first_half_classes, make_splits
from benchmark.errors import ConfigError, DatasetError


def _labels(classes, per_class=3):
    return np.repeat(np.asarray(classes), per_class)


def test_first_half_classes():
    labels = _labels(range(1, 201), 2)
    mask = first_half_classes(labels)
    assert np.array_equal(np.unique(labels[mask]), np.arange(1, 101))
    assert np.array_equal(np.unique(labels[~mask]), np.arange(101, 201))
    # unsorted input, odd class count: the first floor(C / 2) sorted classes train
    assert first_half_classes([5, 1, 3, 1, 9]).tolist() == [False, True, True, True, False]


def test_first_half_needs_two_classes():
    with pytest.raises(DatasetError, match="need at least 2 classes"):
        first_half_classes([4, 4, 4])


def test_contiguous_blocks_of_100_classes():
    blocks = class_disjoint_folds(np.arange(1, 101), 4)
    assert [b.tolist() for b in blocks] == [list(range(1, 26)), list(range(26, 51)),
                                            list(range(51, 76)), list(range(76, 101))]


def test_shuffled_folds_are_seeded():
    classes = np.arange(1, 101)
    a = class_disjoint_folds(classes, 4, mode="shuffled", seed=1)
    b = class_disjoint_folds(classes, 4, mode="shuffled", seed=1)
    c = class_disjoint_folds(classes, 4, mode="shuffled", seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert np.array_equal(np.sort(np.concatenate(a)), classes)
    assert [len(block) for block in a] == [25, 25, 25, 25]


@pytest.mark.parametrize("mode", ["contiguous", "shuffled"])
def test_make_splits_disjoint_and_complete(mode):
    train_labels = _labels(range(1, 11))
    test_labels = _labels(range(11, 21))
    splits = make_splits(train_labels, test_labels, n_folds=4, mode=mode, seed=5)
    assert len(splits.folds) == 4
    assert splits.train_classes.tolist() == list(range(1, 11))
    assert splits.test_classes.tolist() == list(range(11, 21))
    validated = np.concatenate([f.val_classes for f in splits.folds])
    assert sorted(validated.tolist()) == list(range(1, 11))  # every train class validated exactly once
    for fold in splits.folds:
        train_seen = set(train_labels[fold.train_indices].tolist())
        val_seen = set(train_labels[fold.val_indices].tolist())
        assert train_seen == set(fold.train_classes.tolist()) and val_seen == set(fold.val_classes.tolist())
        assert not train_seen & val_seen
        assert not (train_seen | val_seen) & set(test_labels.tolist())
        indices = np.sort(np.concatenate([fold.train_indices, fold.val_indices]))
        assert np.array_equal(indices, np.arange(len(train_labels)))


def test_contiguous_is_the_default():
    splits = make_splits(_labels(range(1, 101), 1), _labels(range(101, 201), 1))
    assert [f.val_classes.tolist() for f in splits.folds] == [list(range(1, 26)), list(range(26, 51)),
                                                               list(range(51, 76)), list(range(76, 101))]


def test_shared_class_is_an_error():
    with pytest.raises(DatasetError, match=r"train and test share 1 class\(es\), e\.g\. \[4\]"):
        make_splits(_labels([1, 2, 3, 4, 5]), _labels([4, 6, 7]))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"n_folds": 1}, ConfigError, "n_folds must be at least 2"),
    ({"mode": "random"}, ConfigError, "unknown fold mode 'random'"),
    ({"n_folds": 6}, DatasetError, "5 training classes cannot make 6 class-disjoint folds"),
])
def test_bad_fold_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_splits(_labels([1, 2, 3, 4, 5]), _labels([6, 7]), **kwargs)
