"""The ``features`` dataset: .npz and .npy-folder layouts, the split rule, and one-line errors naming file and key."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.catalog import load_dataset
from benchmark.data.features import load_features
from benchmark.data.tensor_sets import TensorSet
from benchmark.errors import DatasetError


def clustered(n_classes: int = 12, per_class: int = 6, dim: int = 8, seed: int = 0):
    """Features around one random centre per class (labels 0..n_classes-1)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 3
    labels = np.repeat(np.arange(n_classes), per_class)
    return (centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_without_split_trains_on_the_first_half_of_the_classes(tmp_path):
    x, y = clustered()
    source = load_dataset("features", root=write_npz(tmp_path / "f.npz", features=x, labels=y))
    assert isinstance(source.train, TensorSet) and source.info["features"]
    assert source.train.values.shape == (36, 8, 1, 1) and source.train.values.dtype.is_floating_point
    assert set(source.train.labels) == set(range(6)) and set(source.test.labels) == set(range(6, 12))
    assert np.allclose(source.train.values[:, :, 0, 0].numpy(), x[y < 6])


@pytest.mark.parametrize("split", [np.where(np.arange(72) < 24, "test", "train"), (np.arange(72) < 24).astype(int)])
def test_split_key_as_words_or_zero_one(tmp_path, split):
    x, y = clustered()
    source = load_features(write_npz(tmp_path / "f.npz", features=x.astype(np.float64), labels=y, split=split))
    assert set(source.test.labels) == {0, 1, 2, 3} and len(source.train) == 48


def test_folder_of_npy_files(tmp_path):
    x, y = clustered()
    np.save(tmp_path / "features.npy", x.astype(np.float16))
    np.save(tmp_path / "labels.npy", y)
    source = load_features(tmp_path)
    assert len(source.train) + len(source.test) == 72


def bad(tmp_path, **arrays) -> str:
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError) as exc:
        load_features(path)
    msg = str(exc.value)
    assert len(msg.splitlines()) == 1 and str(path) in msg, msg
    return msg


def test_bad_inputs_are_one_line_errors_naming_file_and_key(tmp_path):
    x, y = clustered()
    assert "'features' is missing" in bad(tmp_path, labels=y)
    assert "'labels' is missing" in bad(tmp_path, features=x)
    assert "N x D" in bad(tmp_path, features=x[:, :, None], labels=y)
    assert "floating-point" in bad(tmp_path, features=x.astype(np.int32), labels=y)
    nan = x.copy()
    nan[5, 3] = np.nan
    assert "row 5, column 3" in bad(tmp_path, features=nan, labels=y)
    inf = x.copy()
    inf[2, 0] = np.inf
    assert "'features'" in bad(tmp_path, features=inf, labels=y)
    assert "one label per row" in bad(tmp_path, features=x, labels=y[:-1])
    assert "integers" in bad(tmp_path, features=x, labels=y.astype(np.float32))
    assert "'split'" in bad(tmp_path, features=x, labels=y, split=np.full(72, "val"))
    assert "0 = train" in bad(tmp_path, features=x, labels=y, split=np.full(72, 2))
    shared = np.where(np.arange(72) % 2 == 0, "train", "test")
    assert "both sides" in bad(tmp_path, features=x, labels=y, split=shared)
    assert "train side 1 class(es)" in bad(tmp_path, features=x, labels=np.repeat([0, 1], 36))
    assert "at most 1 sample(s)" in bad(tmp_path, features=x, labels=np.r_[np.zeros(36, int), np.arange(36) + 1])


def test_missing_or_unreadable_files(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        load_features(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an archive")
    with pytest.raises(DatasetError, match="junk.npz"):
        load_features(tmp_path / "junk.npz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no features.npy"):
        load_features(empty)


def test_string_labels_are_class_names_in_sorted_order(tmp_path):
    x, y = clustered()
    names = np.array([f"species_{c:02d}" for c in y])
    source = load_features(write_npz(tmp_path / "f.npz", features=x, labels=names))
    assert set(source.train.labels) == set(range(6)) and set(source.test.labels) == set(range(6, 12))
    assert np.allclose(source.train.values[:, :, 0, 0].numpy(), x[y < 6])


def test_missing_string_label_names_the_row(tmp_path):
    x, y = clustered()
    names = np.array([f"c{c}" for c in y])
    names[7] = "nan"
    with pytest.raises(DatasetError, match=r"bad\.npz: key 'labels' holds 1 missing label\(s\) \('nan' at row 7\)"):
        load_features(write_npz(tmp_path / "bad.npz", features=x, labels=names))


def test_labels_as_a_column_read_like_a_vector(tmp_path):
    x, y = clustered()
    column = load_features(write_npz(tmp_path / "col.npz", features=x, labels=y[:, None]))
    vector = load_features(write_npz(tmp_path / "vec.npz", features=x, labels=y))
    assert column.train.labels.tolist() == vector.train.labels.tolist()
    assert column.test.labels.tolist() == vector.test.labels.tolist()


def test_features_beyond_float32_are_refused_naming_row_and_column(tmp_path):
    x, y = clustered()
    x = x.astype(np.float64)
    x[4, 1] = 1e300
    with pytest.raises(DatasetError, match=r"big\.npz: key 'features' holds 1 value\(s\) beyond float32's range, "
                                           r"the first 1e\+300 at row 4, column 1"):
        load_features(write_npz(tmp_path / "big.npz", features=x, labels=y))
