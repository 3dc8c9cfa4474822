"""The user's own data: a folder of class sub-folders, and a CSV of paths and labels."""

from __future__ import annotations

import re
import shutil

import pytest

from benchmark.data.custom import load_csv, load_image_folder
from benchmark.errors import DatasetError
from tests.data.fixtures import make_csv, make_image_folder, write_corrupt_image, write_image

SIZE = {"image_size": 24, "resize": 28}


# --------------------------------------------------------------------------- folder

def test_folder_first_half_of_sorted_classes(tmp_path):
    root = make_image_folder(tmp_path, n_classes=4, per_class=3)
    (root / "README.txt").write_text("not a class")
    ds = load_image_folder(root, **SIZE)
    assert ds.name == "folder"
    assert ds.info["class_names"] == ["class_a", "class_b", "class_c", "class_d"]
    assert ds.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.test.labels.tolist() == [2, 2, 2, 3, 3, 3]
    assert {p.suffix for p in ds.train.paths} == {".jpg", ".png"}
    assert ds.train[0][0].shape == (3, 24, 24)
    assert ds.test[1][0].shape == (3, 24, 24)


def test_folder_with_train_and_test_folders(tmp_path):
    root = make_image_folder(tmp_path, n_classes=4, per_class=2, split_dirs=True)
    write_image(root / "test" / "aardvark" / "0.jpg")  # sorts first, but stays a test class
    ds = load_image_folder(root, **SIZE)
    assert ds.info["class_names"] == ["aardvark", "class_a", "class_b", "class_c", "class_d"]
    assert ds.train.labels.tolist() == [1, 1, 2, 2]
    assert ds.test.labels.tolist() == [0, 3, 3, 4, 4]


def test_folder_missing(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere: folder not found \(expected one sub-folder of images per class"):
        load_image_folder(tmp_path / "nowhere")


def test_folder_train_without_test(tmp_path):
    root = make_image_folder(tmp_path, n_classes=4, per_class=2, split_dirs=True)
    shutil.rmtree(root / "test")
    with pytest.raises(DatasetError, match=r"test: folder not found \(expected both .*train and .*test"):
        load_image_folder(root)


def test_folder_class_in_both_splits(tmp_path):
    root = make_image_folder(tmp_path, n_classes=4, per_class=2, split_dirs=True)
    write_image(root / "test" / "class_a" / "9.jpg")
    with pytest.raises(DatasetError, match=r"\['class_a'\] are in both train/ and test/"):
        load_image_folder(root)


def test_folder_empty_class(tmp_path):
    root = make_image_folder(tmp_path, n_classes=4, per_class=2)
    (root / "class_e").mkdir()
    with pytest.raises(DatasetError, match=r"class_e: class folder has no images"):
        load_image_folder(root)


def test_folder_one_class(tmp_path):
    root = make_image_folder(tmp_path, n_classes=1, per_class=2)
    with pytest.raises(DatasetError, match=r"found 1 class\(es\), expected at least 2"):
        load_image_folder(root)


def test_folder_corrupt_image(tmp_path):
    ds = load_image_folder(make_image_folder(tmp_path, n_classes=2, per_class=2), **SIZE)
    write_corrupt_image(ds.test.paths[0])
    with pytest.raises(DatasetError, match=rf"{re.escape(str(ds.test.paths[0]))}: corrupt or unreadable image"):
        ds.test[0]


# --------------------------------------------------------------------------- CSV

def test_csv_string_labels_first_half(tmp_path):
    path = make_csv(tmp_path / "data.csv", n_classes=4, per_class=2)
    ds = load_csv(path, **SIZE)
    assert ds.name == "csv"
    assert ds.info["class_names"] == ["cat_0", "cat_1", "cat_2", "cat_3"]
    assert ds.train.labels.tolist() == [0, 0, 1, 1]
    assert ds.test.labels.tolist() == [2, 2, 3, 3]
    assert ds.train.paths[0] == tmp_path / "images" / "0_0.jpg"
    assert ds.train[0][0].shape == (3, 24, 24)


def test_csv_integer_labels_and_split_column(tmp_path):
    path = make_csv(tmp_path / "data.csv", n_classes=4, per_class=2, split=True, string_labels=False)
    ds = load_csv(path, **SIZE)
    assert "class_names" not in ds.info
    assert ds.train.labels.tolist() == [10, 10, 20, 20]
    assert ds.test.labels.tolist() == [30, 30, 40, 40]


def test_csv_split_column_overrides_first_half(tmp_path):
    path = tmp_path / "data.csv"
    for i in range(4):
        write_image(tmp_path / f"{i}.jpg", i)
    absolute = tmp_path / "3.jpg"
    path.write_text(f"path,label,split\n0.jpg,b,test\n1.jpg,b,test\n2.jpg,a,train\n{absolute},a,train\n")
    ds = load_csv(path, **SIZE)
    assert ds.train.labels.tolist() == [0, 0] and ds.test.labels.tolist() == [1, 1]
    assert ds.train.paths[1] == absolute


@pytest.mark.parametrize("text, message", [
    ("file,label\n", r"data\.csv:1: expected the header path,label or path,label,split \(and an optional category "
                     r"column\), found 'file,label'"),
    ("path,label,extra\n", r"data\.csv:1: expected the header path,label or path,label,split"),
    ("path,label\n", r"data\.csv: no rows after the header"),
    ("path,label\nimages/0_0.jpg\n", r"data\.csv:2: expected 2 columns \(path,label\), found 1"),
    ("path,label\nimages/0_0.jpg,\n", r"data\.csv:2: the label column is empty"),
    ("path,label,split\nimages/0_0.jpg,a,val\n",
     r"data\.csv:2: expected split train or test \(or train, query or gallery\), found 'val'"),
    ("path,label\nimages/0_0.jpg,a\nimages/nope.jpg,b\n",
     r"nope\.jpg: image file is missing \(listed in .*data\.csv:3\)"),
    ("path,label,split\nimages/0_0.jpg,a,train\nimages/0_1.jpg,a,test\n",
     r"data\.csv: label 'a' is in both splits \(train at line 2, test at line 3"),
    ("path,label,split\nimages/0_0.jpg,a,train\nimages/0_1.jpg,b,train\n", r"data\.csv: no rows with split test"),
])
def test_csv_errors(tmp_path, text, message):
    make_csv(tmp_path / "data.csv", n_classes=2, per_class=2)
    (tmp_path / "data.csv").write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_csv(tmp_path / "data.csv")


def test_csv_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.csv: file not found \(expected a CSV file with header path,label"):
        load_csv(tmp_path / "nope.csv")


def test_csv_from_a_spreadsheet_with_bom_crlf_and_quoted_fields_reads_like_a_plain_one(tmp_path):
    plain = load_csv(make_csv(tmp_path / "data.csv", n_classes=4, per_class=2), **SIZE)
    lines = (tmp_path / "data.csv").read_text().splitlines()
    quoted = [lines[0]] + [f'"{p}","{label}"' if i % 2 else f"{p},{label}"
                           for i, (p, label) in enumerate(line.split(",") for line in lines[1:])]
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(quoted).encode() + b"\r\n")
    excel = load_csv(tmp_path / "excel.csv", **SIZE)
    assert excel.info["class_names"] == plain.info["class_names"]
    assert excel.train.paths == plain.train.paths and excel.test.paths == plain.test.paths
    assert excel.train.labels.tolist() == plain.train.labels.tolist()


@pytest.mark.parametrize("text, message", [
    ('path,label\nimages/0_0.jpg,a\n"images/0_1.jpg,a\nimages/1_0.jpg,b\n',
     r"data\.csv:3: malformed CSV row \(unexpected end of data\) \(an unclosed quote\?\)"),
    ('path,label\nimages/0_0.jpg,"a\nimages/0_1.jpg,a"\nimages/1_0.jpg,b\n',
     r"data\.csv:2: a quoted field runs on to line 3"),
    ("path;label\nimages/0_0.jpg;a\n", r"data\.csv:1: expected the header .* found 'path;label' \(separated by "
                                          r"semicolons\? save it with commas\)"),
    ("path,label\nimages/0_0.jpg,10\nimages/0_1.jpg,nan\nimages/1_0.jpg,20\n",
     r"data\.csv:3: the label is missing \('nan'\)"),
    ("path,label\nimages/0_0.jpg,10\nimages/0_1.jpg,10\nimages/1_0.jpg,b\nimages/1_1.jpg,20\n",
     r"data\.csv:4: label 'b' is not an integer, unlike 3 other rows \(e\.g\. line 2: '10'\)"),
])
def test_csv_strict_parsing_names_the_line(tmp_path, text, message):
    make_csv(tmp_path / "data.csv", n_classes=2, per_class=2)
    (tmp_path / "data.csv").write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_csv(tmp_path / "data.csv")


def test_csv_with_empty_trailing_columns_from_a_spreadsheet_reads_like_a_plain_one(tmp_path):
    plain = load_csv(make_csv(tmp_path / "data.csv", n_classes=4, per_class=2), **SIZE)
    lines = (tmp_path / "data.csv").read_text().splitlines()
    (tmp_path / "wide.csv").write_text("\n".join(line + ",," for line in lines) + "\n")
    wide = load_csv(tmp_path / "wide.csv", **SIZE)
    assert wide.train.paths == plain.train.paths and wide.test.labels.tolist() == plain.test.labels.tolist()


def test_csv_value_in_an_unnamed_trailing_column_is_refused(tmp_path):
    make_csv(tmp_path / "data.csv", n_classes=2, per_class=2)
    (tmp_path / "data.csv").write_text("path,label,\nimages/0_0.jpg,a,\nimages/0_1.jpg,a,oops\n")
    with pytest.raises(DatasetError, match=r"data\.csv:3: expected 2 columns \(path,label\), found 3"):
        load_csv(tmp_path / "data.csv")


# --------------------------------------------------------------------------- list files: paths as the user wrote them

def test_csv_absolute_paths_to_images_elsewhere(tmp_path):
    """A list of absolute paths (how list files are usually written) loads, wherever the images are."""
    images = [write_image(tmp_path / "store" / f"{c}_{j}.jpg", 10 * c + j) for c in range(4) for j in range(2)]
    (tmp_path / "lists").mkdir()
    csv = tmp_path / "lists" / "data.csv"
    csv.write_text("path,label\n" + "".join(f"{p},c{i // 2}\n" for i, p in enumerate(images)))
    ds = load_csv(csv, **SIZE)
    assert ds.train.paths == images[:4] and ds.test.paths == images[4:]
    assert ds.test.labels.tolist() == [2, 2, 3, 3]


def test_csv_relative_to_an_image_root(tmp_path):
    csv = make_csv(tmp_path / "data" / "list.csv", n_classes=4, per_class=2)
    moved = tmp_path / "lists" / "list.csv"
    moved.parent.mkdir()
    moved.write_text(csv.read_text())
    with pytest.raises(DatasetError, match=r"lists/images/0_0\.jpg: image file is missing \(listed in .*list\.csv:2\)"):
        load_csv(moved)
    ds = load_csv(moved, image_root=tmp_path / "data", **SIZE)
    assert ds.train.paths[0] == tmp_path / "data" / "images" / "0_0.jpg"
    with pytest.raises(DatasetError, match=r"nowhere: folder not found \(expected the folder the relative image "
                                           r"paths of .*list\.csv are resolved against \(image_root\)"):
        load_csv(moved, image_root=tmp_path / "nowhere")


def test_csv_relative_path_leaving_the_image_root(tmp_path):
    csv = make_csv(tmp_path / "data" / "list.csv", n_classes=4, per_class=2)
    write_image(tmp_path / "elsewhere.jpg")
    with csv.open("a") as f:
        f.write("../elsewhere.jpg,cat_3\n")
    with pytest.raises(DatasetError, match=r"elsewhere\.jpg: image path is outside the dataset root .*data \(listed "
                                           r"in .*list\.csv:10\)"):
        load_csv(csv)


def test_csv_query_and_gallery_split(tmp_path):
    csv = make_csv(tmp_path / "data.csv", n_classes=4, per_class=3, split=True)
    lines = csv.read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:  # a test class's first image a query, the others gallery
        out.append(line.replace(",test", ",query" if line.split(",")[0].endswith("_0.jpg") else ",gallery"))
    csv.write_text("\n".join(out) + "\n")
    ds = load_csv(csv, **SIZE)
    assert ds.has_query_gallery
    assert ds.query.labels.tolist() == [2, 3] and ds.gallery.labels.tolist() == [2, 2, 3, 3]
    assert ds.test.labels.tolist() == [2, 3, 2, 2, 3, 3]
    # the first-half rule instead, when asked for
    assert not load_csv(csv, class_split="first_half").has_query_gallery


@pytest.mark.parametrize("rows, message", [
    ("images/0_0.jpg,a,train\nimages/0_1.jpg,b,test\nimages/1_0.jpg,c,query\n",
     r"data\.csv: rows with split test \(line 3\) and query \(line 4\); expected train and test rows, or train, query "
     r"and gallery rows"),
    ("images/0_0.jpg,a,train\nimages/0_1.jpg,b,query\n", r"data\.csv: no rows with split gallery"),
    ("images/0_0.jpg,a,train\nimages/0_1.jpg,b,query\nimages/1_0.jpg,a,gallery\n",
     r"data\.csv: label 'a' is in both splits \(train at line 2, gallery at line 4"),
])
def test_csv_query_gallery_errors(tmp_path, rows, message):
    make_csv(tmp_path / "data.csv", n_classes=2, per_class=2)
    (tmp_path / "data.csv").write_text("path,label,split\n" + rows)
    with pytest.raises(DatasetError, match=message):
        load_csv(tmp_path / "data.csv")


def test_csv_category_column_gives_test_categories(tmp_path):
    csv = make_csv(tmp_path / "data.csv", n_classes=4, per_class=2, split=True)
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0] + ",category"] + [f"{line},{'red' if i % 2 else 'blue'}"
                                                           for i, line in enumerate(lines[1:])]) + "\n")
    ds = load_csv(csv, **SIZE)
    assert ds.test.labels.tolist() == [2, 2, 3, 3]
    assert ds.info["test_categories"].tolist() == ["blue", "red", "blue", "red"]  # rows 5-8 of the file
    assert load_csv(csv, class_split="first_half").info["test_categories"].tolist() == ["blue", "red", "blue", "red"]
