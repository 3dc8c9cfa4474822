"""In-shop Clothes loader on a tiny fixture in the DeepFashion layout (query/gallery split)."""

from __future__ import annotations

import re

import pytest

from benchmark.data.inshop import load_inshop
from benchmark.errors import DatasetError
from tests.data.fixtures import make_inshop, write_corrupt_image

SIZE = {"image_size": 24, "resize": 28}


@pytest.fixture
def inshop(tmp_path):
    return make_inshop(tmp_path / "inshop", n_train_items=3, n_test_items=3, per_item=3)


def _edit_line(path, lineno, text):
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_loads_query_and_gallery(inshop):
    ds = load_inshop(inshop, **SIZE)
    assert ds.name == "inshop" and ds.has_query_gallery
    assert ds.train.labels.tolist() == [1, 1, 1, 3, 3, 3, 5, 5, 5]
    assert ds.query.labels.tolist() == [7, 9, 11]
    assert ds.gallery.labels.tolist() == [7, 7, 9, 9, 11, 11]
    assert ds.test.labels.tolist() == ds.query.labels.tolist() + ds.gallery.labels.tolist()
    assert ds.test.paths == ds.query.paths + ds.gallery.paths
    assert ds.query.paths[0] == inshop / "img" / "MEN" / "Denim" / "id_00000007" / "01_1_front.jpg"
    assert ds.train[0][0].shape == (3, 24, 24)
    assert ds.query[0][0].shape == (3, 24, 24)
    assert ds.gallery[0][0].shape == (3, 24, 24)


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere: folder not found \(expected .*list_eval_partition\.txt"):
        load_inshop(tmp_path / "nowhere")


def test_missing_partition_file(inshop):
    (inshop / "list_eval_partition.txt").unlink()
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt: file not found"):
        load_inshop(inshop)


def test_count_line_mismatch(inshop):
    _edit_line(inshop / "list_eval_partition.txt", 1, "52712")
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt:1: the count line says 52712 images, "
                                           r"but 18 rows follow"):
        load_inshop(inshop)


def test_bad_header(inshop):
    _edit_line(inshop / "list_eval_partition.txt", 2, "image_name item_id")
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt:2: expected the header"):
        load_inshop(inshop)


@pytest.mark.parametrize("row, message", [
    ("img/x.jpg id_00000001", r":3: expected 3 columns"),
    ("img/x.jpg item_1 train", r":3: expected an item_id like 'id_00000001', found 'item_1'"),
    ("img/x.jpg id_00000001 val", r":3: expected evaluation_status train, query or gallery, found 'val'"),
])
def test_malformed_row(inshop, row, message):
    _edit_line(inshop / "list_eval_partition.txt", 3, row)
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt" + message):
        load_inshop(inshop)


def test_train_item_in_query(inshop):
    path = inshop / "list_eval_partition.txt"
    lines = path.read_text().splitlines()
    query_line = next(i for i, line in enumerate(lines, 1) if line.endswith("query"))
    _edit_line(path, query_line, lines[query_line - 1].replace("id_00000007", "id_00000001"))
    with pytest.raises(DatasetError, match=rf"list_eval_partition\.txt:{query_line}: query item id_00000001 "
                                           r"is also a train item \(line 3"):
        load_inshop(inshop)


def test_missing_image(inshop):
    missing = inshop / "img" / "WOMEN" / "Dresses" / "id_00000009" / "02_2_front.jpg"
    missing.unlink()
    with pytest.raises(DatasetError, match=rf"{re.escape(str(missing))}: image file is missing \(listed in "
                                           r".*list_eval_partition\.txt:\d+\)"):
        load_inshop(inshop)


def test_corrupt_image(inshop):
    ds = load_inshop(inshop, **SIZE)
    write_corrupt_image(ds.gallery.paths[1])
    with pytest.raises(DatasetError, match=rf"{re.escape(str(ds.gallery.paths[1]))}: corrupt or unreadable image"):
        ds.gallery[1]
