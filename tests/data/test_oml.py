"""open-metric-learning's df.csv: its columns, the DML split, query/gallery, categories; one line per problem."""

from __future__ import annotations

import pytest

from benchmark.data.catalog import load_dataset
from benchmark.data.oml import load_oml
from benchmark.errors import DatasetError
from tests.data.fixtures import make_oml

SIZE = {"image_size": 24, "resize": 28}


def test_dml_split_with_query_and_gallery(tmp_path):
    ds = load_oml(make_oml(tmp_path / "df.csv", n_classes=6, per_class=3), **SIZE)
    assert ds.name == "oml" and ds.has_query_gallery
    assert sorted(set(ds.train.labels.tolist())) == [0, 1, 2]
    assert ds.query.labels.tolist() == [3, 4, 5]  # each validation class's first image
    assert ds.gallery.labels.tolist() == [3, 3, 4, 4, 5, 5]
    assert ds.test.labels.tolist() == [3, 4, 5, 3, 3, 4, 4, 5, 5]  # query first, then gallery
    assert [p.name for p in ds.query.paths] == ["3_0.jpg", "4_0.jpg", "5_0.jpg"]
    # category of each test row, query rows first: class c has categories[c % 2]
    assert ds.info["test_categories"].tolist() == ["bags", "shoes", "bags", "bags", "bags", "shoes", "shoes",
                                                   "bags", "bags"]
    assert ds.query[0][0].shape == (3, 24, 24)


def test_every_row_query_and_gallery_is_the_test_set_against_itself(tmp_path):
    ds = load_oml(make_oml(tmp_path / "df.csv", query_gallery=False), **SIZE)
    assert not ds.has_query_gallery
    assert ds.test.labels.tolist() == [3, 3, 3, 4, 4, 4, 5, 5, 5]


def test_classification_split_is_refused_in_one_line(tmp_path):
    path = make_oml(tmp_path / "df.csv", split="classification")
    with pytest.raises(DatasetError) as err:
        load_oml(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: label '0' is in both splits (train at line 2, query at line 3;")
    assert "class_split: first_half" in msg


def test_first_half_rederives_the_dml_split(tmp_path):
    """OML's classification split of CUB/Cars, re-split by class: the same images as the DML-split file."""
    classification = load_oml(make_oml(tmp_path / "a" / "df.csv", split="classification"), class_split="first_half")
    dml = load_oml(make_oml(tmp_path / "b" / "df.csv", query_gallery=False))
    for part in ("train", "test"):
        a, b = getattr(classification, part), getattr(dml, part)
        assert sorted(zip(a.labels.tolist(), [p.name for p in a.paths])) == \
            sorted(zip(b.labels.tolist(), [p.name for p in b.paths]))
    assert not classification.has_query_gallery
    assert len(classification.info["test_categories"]) == len(classification.test)


def test_absolute_paths_and_image_root(tmp_path):
    images = tmp_path / "store" / "imgs"
    ds = load_oml(make_oml(tmp_path / "lists" / "df.csv", absolute=True, image_dir=images))
    assert all(p.is_absolute() and images in p.parents for p in ds.train.paths)
    # relative to an explicit image root, the list elsewhere
    path = make_oml(tmp_path / "store" / "df.csv", image_dir=images)
    moved = tmp_path / "elsewhere" / "df.csv"
    moved.parent.mkdir()
    moved.write_text(path.read_text())
    with pytest.raises(DatasetError, match=r"image file is missing"):
        load_oml(moved)
    ds = load_dataset("oml", root=str(moved), image_root=str(tmp_path / "store"))
    assert len(ds.train) == 9


def test_relative_path_leaving_the_image_root_is_refused(tmp_path):
    path = make_oml(tmp_path / "data" / "df.csv")
    (tmp_path / "outside.jpg").write_bytes((tmp_path / "data" / "images" / "0_0.jpg").read_bytes())
    path.write_text(path.read_text().replace("images/0_1.jpg", "../outside.jpg"))
    with pytest.raises(DatasetError, match=r"outside\.jpg: image path is outside the dataset root .*data \(listed in "
                                           r".*df\.csv:3\)"):
        load_oml(path)


def test_symbolic_link_leaving_the_image_root_is_refused(tmp_path):
    path = make_oml(tmp_path / "data" / "df.csv")
    (tmp_path / "outside.jpg").write_bytes((tmp_path / "data" / "images" / "0_0.jpg").read_bytes())
    link = tmp_path / "data" / "images" / "0_1.jpg"
    link.unlink()
    link.symlink_to(tmp_path / "outside.jpg")
    with pytest.raises(DatasetError, match=r"0_1\.jpg: image path is outside the dataset root .*\(a symbolic link to"):
        load_oml(path)


def _rewrite(path, old, new):
    path.write_text(path.read_text().replace(old, new, 1))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda p: p.write_text(p.read_text().replace("is_gallery", "gallery", 1)),
     r"df\.csv:1: the header has no column is_gallery \(expected open-metric-learning's df\.csv"),
    (lambda p: _rewrite(p, "0,images/0_0.jpg", "zero,images/0_0.jpg"),
     r"df\.csv:2: expected an integer label >= 0, found 'zero'"),
    (lambda p: _rewrite(p, "0,images/0_0.jpg", "-1,images/0_0.jpg"),
     r"df\.csv:2: expected an integer label >= 0, found '-1'"),
    (lambda p: _rewrite(p, ",train,", ",test,"), r"df\.csv:2: expected split train or validation, found 'test'"),
    (lambda p: _rewrite(p, "True,False", "yes please,False"),
     r"df\.csv:\d+: expected is_query True or False on a validation row, found 'yes please'"),
    (lambda p: _rewrite(p, "True,False", "True,True"),
     r"df\.csv:\d+: is_query and is_gallery are both True on a validation row"),
    (lambda p: _rewrite(p, "True,False", "False,False"),
     r"df\.csv:\d+: is_query and is_gallery are both False on a validation row"),
    (lambda p: p.write_text(p.read_text().replace("validation", "train")),
     r"df\.csv: no rows with split validation"),
    (lambda p: _rewrite(p, "images/0_0.jpg", "images/nothing.jpg"),
     r"nothing\.jpg: image file is missing \(listed in .*df\.csv:2\)"),
    (lambda p: p.write_text(p.read_text().splitlines()[0] + "\n"), r"df\.csv: no rows after the header"),
    (lambda p: _rewrite(p, "0,images/0_0.jpg,train,,", "0,images/0_0.jpg,train,"),
     r"df\.csv:2: expected 10 columns"),
])
def test_malformed_file_one_line(tmp_path, change, message):
    path = make_oml(tmp_path / "df.csv")
    change(path)
    with pytest.raises(DatasetError, match=message) as err:
        load_oml(path)
    assert "\n" not in str(err.value)


def test_unknown_class_split(tmp_path):
    with pytest.raises(DatasetError, match=r"class_split must be one of file, first_half, got 'half'"):
        load_oml(make_oml(tmp_path / "df.csv"), class_split="half")


def test_empty_columns_a_spreadsheet_added_at_the_end_are_ignored(tmp_path):
    """The csv and oml readers share one row reader (benchmark.data.lists.read_list_rows): a header and rows
    ending in empty cells, as a spreadsheet saves them, read as the file without them; a value there is refused."""
    path = make_oml(tmp_path / "df.csv")
    plain = load_oml(path, **SIZE)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line + ",," for line in lines) + "\n")
    padded = load_oml(path, **SIZE)
    assert padded.query.labels.tolist() == plain.query.labels.tolist()
    assert padded.gallery.labels.tolist() == plain.gallery.labels.tolist()
    assert [p.name for p in padded.train.paths] == [p.name for p in plain.train.paths]
    lines[1] += ",,stray"
    path.write_text("\n".join([lines[0] + ",,"] + lines[1:]) + "\n")
    with pytest.raises(DatasetError, match=r"df\.csv:2: expected 10 columns .*found 12"):
        load_oml(path, **SIZE)
