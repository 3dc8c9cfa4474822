"""Stanford Online Products loader on a tiny fixture in the official layout (official split files)."""

from __future__ import annotations

import re

import pytest

from benchmark.data.sop import load_sop
from benchmark.errors import DatasetError
from tests.data.fixtures import make_sop, write_corrupt_image

SIZE = {"image_size": 24, "resize": 28}


@pytest.fixture
def sop(tmp_path):
    return make_sop(tmp_path / "Stanford_Online_Products", n_train_classes=3, n_test_classes=3, per_class=2)


def _edit_line(path, lineno, text):
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_loads_official_split(sop):
    ds = load_sop(sop, **SIZE)
    assert ds.name == "sop"
    assert ds.train.labels.tolist() == [1, 1, 2, 2, 3, 3]
    assert ds.test.labels.tolist() == [4, 4, 5, 5, 6, 6]
    assert ds.info["train_super_labels"].tolist() == [1, 1, 2, 2, 3, 3]
    assert ds.train.paths[0].parent == sop / "bicycle_final"
    # the test images' super-classes by name (classes 4, 5, 6: super-classes 4, 5, 6 of the fixture)
    assert ds.info["test_categories"].tolist() == ["coffee_maker"] * 2 + ["fan"] * 2 + ["kettle"] * 2
    assert ds.info["test_super_labels"].tolist() == [4, 4, 5, 5, 6, 6]
    assert ds.train[0][0].shape == (3, 24, 24)
    assert ds.test[0][0].shape == (3, 24, 24)


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere: folder not found \(expected .*Ebay_train\.txt"):
        load_sop(tmp_path / "nowhere")


def test_missing_split_file(sop):
    (sop / "Ebay_test.txt").unlink()
    with pytest.raises(DatasetError, match=r"Ebay_test\.txt: file not found"):
        load_sop(sop)


def test_bad_header(sop):
    _edit_line(sop / "Ebay_train.txt", 1, "image_id class_id path")
    with pytest.raises(DatasetError, match=r"Ebay_train\.txt:1: expected the header 'image_id class_id "
                                           r"super_class_id path', found 'image_id class_id path'"):
        load_sop(sop)


def test_wrong_column_count(sop):
    _edit_line(sop / "Ebay_test.txt", 3, "2 4 1")
    with pytest.raises(DatasetError, match=r"Ebay_test\.txt:3: expected 4 columns .* found 3"):
        load_sop(sop)


def test_non_integer_class(sop):
    _edit_line(sop / "Ebay_train.txt", 2, "1 x 1 bicycle_final/111085122801_0.JPG")
    with pytest.raises(DatasetError, match=r"Ebay_train\.txt:2: expected an integer class_id, found 'x'"):
        load_sop(sop)


def test_train_and_test_share_a_class(sop):
    _edit_line(sop / "Ebay_test.txt", 2, "1 3 4 coffee_maker_final/111085122804_0.JPG")
    with pytest.raises(DatasetError, match=r"Ebay_train\.txt:6: class_id 3 is also in .*Ebay_test\.txt:2"):
        load_sop(sop)


def test_missing_image(sop):
    missing = sop / "fan_final" / "111085122805_1.JPG"
    missing.unlink()
    pattern = rf"{re.escape(str(missing))}: image file is missing \(listed in .*Ebay_test\.txt:5\)"
    with pytest.raises(DatasetError, match=pattern):
        load_sop(sop)


def test_corrupt_image(sop):
    ds = load_sop(sop, **SIZE)
    write_corrupt_image(ds.train.paths[2])
    with pytest.raises(DatasetError, match=rf"{re.escape(str(ds.train.paths[2]))}: corrupt or unreadable image"):
        ds.train[2]
