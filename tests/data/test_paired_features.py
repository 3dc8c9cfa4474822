"""The paired-features dataset: two modalities' vectors over the same classes, each bad input one line."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.catalog import load_dataset
from benchmark.data.paired import paired_of
from benchmark.errors import DatasetError


def paired_arrays(classes: int = 8, per_a: int = 4, per_b: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Modality A (10-d) and B (6-d) as two noisy linear views of one class-centred latent (4-d)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 4))
    wa, wb = rng.normal(size=(4, 10)), rng.normal(size=(4, 6))
    la, lb = np.repeat(np.arange(classes), per_a), np.repeat(np.arange(classes), per_b)
    xa = (centres[la] + 0.3 * rng.normal(size=(len(la), 4))) @ wa
    xb = (centres[lb] + 0.3 * rng.normal(size=(len(lb), 4))) @ wb
    return {"features_a": xa.astype(np.float32), "labels_a": la, "features_b": xb.astype(np.float32), "labels_b": lb}


def write_paired(path, **changes):
    arrays = paired_arrays()
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value(arrays) if callable(value) else value
    np.savez(path, **arrays)
    return path


def test_a_paired_file_loads_modality_a_as_samples_and_b_as_the_second_modality(tmp_path):
    source = load_dataset("paired_features", root=write_paired(tmp_path / "p.npz"))
    second = paired_of(source)
    assert source.train.values.shape == (16, 10, 1, 1) and source.test.values.shape == (16, 10, 1, 1)
    assert sorted(set(source.train.labels.tolist())) == [0, 1, 2, 3]
    assert second.train.values.shape == (8, 6) and sorted(set(second.test.labels.tolist())) == [4, 5, 6, 7]
    assert second.directions() == ("a-to-b", "b-to-a")


def test_split_keys_put_whole_classes_on_one_side(tmp_path):
    arrays = paired_arrays()
    split_a = np.where(arrays["labels_a"] % 2 == 0, "test", "train")
    split_b = (arrays["labels_b"] % 2 == 0).astype(int)
    source = load_dataset("paired_features", root=write_paired(tmp_path / "p.npz", split_a=split_a, split_b=split_b))
    assert sorted(set(source.test.labels.tolist())) == [0, 2, 4, 6]
    assert sorted(set(paired_of(source).test.labels.tolist())) == [0, 2, 4, 6]


def _drop_class(key, c):
    return lambda a: a[key][a[key] != c]


BAD = [
    ("missing_key", {"labels_b": None}, "key 'labels_b' is missing"),
    ("b_lacks_a_class", {"features_b": lambda a: a["features_b"][a["labels_b"] != 3],
                         "labels_b": _drop_class("labels_b", 3)}, "1 class(es) only in A, e.g. [3]"),
    ("a_lacks_b_class", {"features_a": lambda a: a["features_a"][a["labels_a"] != 5],
                         "labels_a": _drop_class("labels_a", 5)}, "1 class(es) only in B, e.g. [5]"),
    ("features_3d", {"features_b": lambda a: a["features_b"][:, :, None]}, "key 'features_b' must be a non-empty"),
    ("labels_short", {"labels_a": lambda a: a["labels_a"][:-1]}, "key 'labels_a' must hold one label per row"),
    ("labels_float", {"labels_b": lambda a: a["labels_b"].astype(float)}, "key 'labels_b' must hold integer"),
    ("nan", {"features_a": lambda a: np.where(np.arange(10) == 2, np.nan, a["features_a"]).astype(np.float32)},
     "key 'features_a' holds 32 NaN"),
    ("split_alone", {"split_a": lambda a: np.zeros(len(a["labels_a"]), int)}, "without its partner"),
    ("split_disagrees", {"split_a": lambda a: (a["labels_a"] >= 4).astype(int),
                         "split_b": lambda a: (a["labels_b"] >= 5).astype(int)}, "put 1 class(es) on both sides"),
]


@pytest.mark.parametrize("change, expect", [(c, e) for _, c, e in BAD], ids=[i for i, _, _ in BAD])
def test_bad_paired_files_are_one_line_errors_naming_file_and_key(tmp_path, change, expect):
    path = write_paired(tmp_path / "p.npz", **change)
    with pytest.raises(DatasetError) as err:
        load_dataset("paired_features", root=path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and expect in message, message
