"""CUB-200-2011 loader on a tiny fixture in the official layout, and its error messages."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from benchmark.data.cub import load_cub200
from benchmark.errors import DatasetError
from tests.data.fixtures import make_cub, write_corrupt_image

SIZE = {"image_size": 24, "resize": 28}


@pytest.fixture
def cub(tmp_path):
    return make_cub(tmp_path / "data", n_classes=4, per_class=3)


def _base(root):
    return root / "CUB_200_2011"


def test_loads_official_layout(cub, caplog):
    with caplog.at_level(logging.WARNING):
        ds = load_cub200(cub, **SIZE)
    assert ds.name == "cub200"
    assert ds.train.labels.tolist() == [1, 1, 1, 2, 2, 2]
    assert ds.test.labels.tolist() == [3, 3, 3, 4, 4, 4]
    assert not ds.has_query_gallery
    x, label, index = ds.train[0]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 24, 24)
    assert (label, index) == (1, 0)
    assert ds.test[5][0].shape == (3, 24, 24)
    assert all(p.parent.name.startswith("00") for p in ds.train.paths)
    assert "200" in caplog.text and "11788" in caplog.text  # subset warning


def test_root_may_be_the_cub_folder(cub):
    ds = load_cub200(_base(cub), **SIZE)
    assert len(ds.train) == 6 and len(ds.test) == 6


def test_falls_back_to_folder_order_without_txt_files(tmp_path):
    root = make_cub(tmp_path, n_classes=4, per_class=2, official_files=False)
    ds = load_cub200(root, **SIZE)
    assert ds.train.labels.tolist() == [1, 1, 2, 2]
    assert ds.test.labels.tolist() == [3, 3, 4, 4]


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere: dataset folder not found .*CUB_200_2011/images"):
        load_cub200(tmp_path / "nowhere")


def test_folder_without_cub(tmp_path):
    with pytest.raises(DatasetError, match=r"CUB_200_2011/images: folder not found"):
        load_cub200(tmp_path)


def test_missing_label_file(cub):
    (_base(cub) / "image_class_labels.txt").unlink()
    with pytest.raises(DatasetError, match=r"image_class_labels\.txt: file not found"):
        load_cub200(cub)


def test_malformed_line(cub):
    path = _base(cub) / "images.txt"
    path.write_text(path.read_text() + "13\n")
    with pytest.raises(DatasetError, match=r"images\.txt:13: expected 2 columns"):
        load_cub200(cub)


def test_non_integer_label(cub):
    path = _base(cub) / "image_class_labels.txt"
    lines = path.read_text().splitlines()
    lines[1] = "2 two"
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetError, match=r"image_class_labels\.txt:2: expected an integer class_id"):
        load_cub200(cub)


def test_label_disagrees_with_folder(cub):
    path = _base(cub) / "image_class_labels.txt"
    lines = path.read_text().splitlines()
    lines[3] = "4 1"  # image 4 is in folder 002.Bird_2
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetError, match=r"image_class_labels\.txt:4: image 4 .* has label 1 but its folder "
                                           r"'002\.Bird_2' says 2"):
        load_cub200(cub)


def test_image_without_label(cub):
    path = _base(cub) / "image_class_labels.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]))
    with pytest.raises(DatasetError, match=r"images\.txt:12: image id 12 has no label"):
        load_cub200(cub)


def test_missing_image(cub):
    missing = next((_base(cub) / "images" / "003.Bird_3").iterdir())
    missing.unlink()
    pattern = rf"{re.escape(str(missing))}: image file is missing \(listed in .*images\.txt:\d+\)"
    with pytest.raises(DatasetError, match=pattern):
        load_cub200(cub)


def test_corrupt_image(cub):
    ds = load_cub200(cub, **SIZE)
    write_corrupt_image(ds.train.paths[1])
    with pytest.raises(DatasetError, match=rf"{re.escape(str(ds.train.paths[1]))}: corrupt or unreadable image"):
        ds.train[1]
