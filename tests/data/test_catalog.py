"""``load_dataset``: dispatch by name, the root requirement and option checking."""

from __future__ import annotations

import pytest

from benchmark.data import DataSource, builtin, load_dataset
from benchmark.data.catalog import DATASETS
from benchmark.errors import ConfigError, DatasetError
from tests.data.fixtures import make_cars196, make_csv, make_cub, make_image_folder, make_inshop, make_sop

FILE_DATASETS = ("cub200", "cars196", "sop", "inshop", "folder", "csv", "oml", "features", "paired_features")


def test_names():
    assert DATASETS == (*FILE_DATASETS, "builtin")


def test_unknown_name():
    with pytest.raises(ConfigError, match=r"unknown dataset 'cub' \(known datasets: cub200, cars196, sop, "
                                          r"inshop, folder, csv, oml, features, paired_features, builtin\)"):
        load_dataset("cub")


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_file_dataset_needs_root(name):
    with pytest.raises(ConfigError, match=rf"dataset '{name}' needs a location: set its root key"):
        load_dataset(name)


@pytest.mark.parametrize("name, expected", [
    ("cub200", r"CUB_200_2011/images"), ("cars196", r"cars_annos\.mat"), ("sop", r"Ebay_train\.txt"),
    ("inshop", r"list_eval_partition\.txt"), ("folder", r"one sub-folder of images per class"),
    ("csv", r"CSV file with header path,label"), ("oml", r"open-metric-learning's df\.csv"),
    ("features", r"an \.npz file or a folder of \.npy files"),
])
def test_missing_root_folder(tmp_path, name, expected):
    with pytest.raises(DatasetError, match=rf"nowhere: .*not found \(expected .*{expected}"):
        load_dataset(name, root=str(tmp_path / "nowhere"))


def test_unknown_option(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown option 'img_size' for dataset 'cub200' "
                                          r"\(known options: image_size, resize\)"):
        load_dataset("cub200", root=str(tmp_path), img_size=64)


@pytest.mark.parametrize("name, make, n_train", [
    ("cub200", make_cub, 6), ("cars196", make_cars196, 6), ("sop", make_sop, 6), ("inshop", make_inshop, 9),
    ("folder", make_image_folder, 6),
])
def test_dispatch(tmp_path, name, make, n_train):
    ds = load_dataset(name, root=str(make(tmp_path / name)), image_size=24, resize=28)
    assert isinstance(ds, DataSource) and ds.name == name
    assert len(ds.train) == n_train
    assert ds.train[0][0].shape == (3, 24, 24)


def test_dispatch_csv(tmp_path):
    ds = load_dataset("csv", root=str(make_csv(tmp_path / "data.csv")), image_size=24, resize=28)
    assert ds.name == "csv" and len(ds.train) == 4


def test_builtin_passes_options(monkeypatch):
    calls = []

    def fake_load_builtin(*, seed: int = 0, num_classes: int = 8) -> str:
        calls.append({"seed": seed, "num_classes": num_classes})
        return "builtin source"

    monkeypatch.setattr(builtin, "load_builtin", fake_load_builtin)
    assert load_dataset("builtin", seed=3) == "builtin source"
    assert calls == [{"seed": 3, "num_classes": 8}]
    with pytest.raises(ConfigError, match=r"unknown option 'classes' for dataset 'builtin' "
                                          r"\(known options: seed, num_classes\)"):
        load_dataset("builtin", classes=4)


def test_builtin_takes_no_root():
    with pytest.raises(ConfigError, match=r"dataset 'builtin' is generated and takes no root"):
        load_dataset("builtin", root="/data")


def test_builtin_unknown_option_checked_against_the_real_loader():
    with pytest.raises(ConfigError, match=r"unknown option 'bogus' for dataset 'builtin'"):
        load_dataset("builtin", bogus=1)
