"""Cars196 loader on a tiny fixture (``cars_annos.mat`` written as the official struct array)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.io

from benchmark.data.cars196 import load_cars196
from benchmark.errors import DatasetError
from tests.data.fixtures import make_cars196, make_cars196_devkit, write_cars_annos, write_corrupt_image

SIZE = {"image_size": 24, "resize": 28}


@pytest.fixture
def cars(tmp_path):
    return make_cars196(tmp_path / "cars", n_classes=4, per_class=3)


def test_loads_official_layout(cars):
    ds = load_cars196(cars, **SIZE)
    assert ds.name == "cars196"
    assert sorted(ds.train.labels.tolist()) == [1, 1, 1, 2, 2, 2]
    assert sorted(ds.test.labels.tolist()) == [3, 3, 3, 4, 4, 4]
    assert ds.train.paths[0] == cars / "car_ims" / "000001.jpg"
    assert ds.train[0][0].shape == (3, 24, 24)
    assert ds.test[0][0].shape == (3, 24, 24)


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere: folder not found \(expected .*cars_annos\.mat"):
        load_cars196(tmp_path / "nowhere")


def test_missing_mat(cars):
    (cars / "cars_annos.mat").unlink()
    with pytest.raises(DatasetError, match=r"cars_annos\.mat: file not found"):
        load_cars196(cars)


def test_corrupt_mat(cars):
    (cars / "cars_annos.mat").write_bytes(b"garbage" * 10)
    with pytest.raises(DatasetError, match=r"cars_annos\.mat: not a readable MATLAB file"):
        load_cars196(cars)


def test_missing_field(cars):
    write_cars_annos(cars / "cars_annos.mat", ["car_ims/000001.jpg"], [1], drop_fields=("class",))
    with pytest.raises(DatasetError, match=r"cars_annos\.mat: annotations has no field 'class'"):
        load_cars196(cars)


def test_bad_class(cars):
    write_cars_annos(cars / "cars_annos.mat", ["car_ims/000001.jpg", "car_ims/000002.jpg"], [1, 0])
    with pytest.raises(DatasetError, match=r"cars_annos\.mat: annotations\(2\)\.class: expected a positive integer"):
        load_cars196(cars)


def test_missing_image(cars):
    (cars / "car_ims" / "000005.jpg").unlink()
    with pytest.raises(DatasetError, match=r"000005\.jpg: image file is missing .*cars_annos\.mat, annotations\(5\)"):
        load_cars196(cars)


def test_corrupt_image(cars):
    ds = load_cars196(cars, **SIZE)
    write_corrupt_image(ds.test.paths[0])
    with pytest.raises(DatasetError, match=rf"{re.escape(str(ds.test.paths[0]))}: corrupt or unreadable image"):
        ds.test[0]


# --------------------------------------------------------------------------- the devkit layout

def _content(images) -> list[tuple[str, int]]:
    """Sorted ``(digest of the file's bytes, label)`` of an image set: what it holds, whatever its file names."""
    import hashlib

    return sorted((hashlib.sha256(p.read_bytes()).hexdigest(), int(label))
                  for p, label in zip(images.paths, images.labels))


@pytest.mark.parametrize("in_devkit", [False, True])
def test_devkit_layout_gives_the_same_images_and_labels(tmp_path, in_devkit):
    original = load_cars196(make_cars196(tmp_path / "orig", n_classes=6, per_class=4), **SIZE)
    devkit = load_cars196(make_cars196_devkit(tmp_path / "devkit", n_classes=6, per_class=4,
                                              test_annos_in_devkit=in_devkit), **SIZE)
    assert _content(devkit.train) == _content(original.train)
    assert _content(devkit.test) == _content(original.test)
    assert sorted(set(devkit.train.labels.tolist())) == [1, 2, 3]  # classes 1..C/2, whatever the devkit's halves
    assert sorted(set(devkit.test.labels.tolist())) == [4, 5, 6]
    # both halves of the devkit hold every class: its classification split is not the one used
    assert {p.parent.name for p in devkit.train.paths} == {"cars_train", "cars_test"}


def test_devkit_missing_test_annotations(tmp_path):
    root = make_cars196_devkit(tmp_path / "devkit")
    (root / "cars_test_annos_withlabels.mat").unlink()
    with pytest.raises(DatasetError, match=r"cars_test_annos_withlabels\.mat: file not found \(expected the Cars196 "
                                           r"devkit layout"):
        load_cars196(root)


def test_devkit_annotations_without_labels(tmp_path):
    """The devkit's cars_test_annos.mat (no class field) put in the place of the labelled file is refused."""
    root = make_cars196_devkit(tmp_path / "devkit")
    ann = np.zeros((1, 1), dtype=[("fname", "O")])
    ann[0, 0]["fname"] = "00001.jpg"
    scipy.io.savemat(str(root / "cars_test_annos_withlabels.mat"), {"annotations": ann})
    with pytest.raises(DatasetError, match=r"cars_test_annos_withlabels\.mat: annotations has no field 'class'"):
        load_cars196(root)


def test_devkit_missing_image(tmp_path):
    root = make_cars196_devkit(tmp_path / "devkit")
    (root / "cars_train" / "00002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"cars_train/00002\.jpg: image file is missing \(listed in "
                                           r".*cars_train_annos\.mat, annotations\(2\)\)"):
        load_cars196(root)
