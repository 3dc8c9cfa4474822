"""CUB-200-2011's attribute files read from the official layout; a malformed line is one error naming file and line."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.cub_attributes import cub_attribute_modality, read_cub_attributes
from benchmark.errors import DatasetError
from tests.data.fixtures import make_cub_attributes


def _base(tmp_path):
    return make_cub_attributes(tmp_path, n_classes=4, per_class=3, n_attributes=5) / "CUB_200_2011"


def test_class_and_image_attributes_are_read_from_the_official_files(tmp_path):
    base = _base(tmp_path)
    attrs = read_cub_attributes(base, per_image=True)
    assert attrs.names == [f"has_part::value_{a}" for a in range(1, 6)]
    assert attrs.class_values.shape == (4, 5)
    assert attrs.class_values[2, 3] == pytest.approx(((7.5 * 3 + 11.0 * 4) % 100) / 100)  # class 3, attribute 4
    assert attrs.image_ids.tolist() == list(range(1, 13))
    assert attrs.image_values[6, 1] == (7 + 2) % 2  # image 7, attribute 2


def test_attributes_txt_beside_the_dataset_folder_as_the_official_archive_ships_it(tmp_path):
    base = _base(tmp_path)
    (base / "attributes" / "attributes.txt").rename(base.parent / "attributes.txt")
    assert len(read_cub_attributes(base).names) == 5


def test_class_attribute_modality_splits_by_the_images_classes(tmp_path):
    base = _base(tmp_path)
    second = cub_attribute_modality("class_attributes", base, np.array([1, 1, 2]), np.array([3, 4]))
    assert second.train.labels.tolist() == [1, 2] and second.test.labels.tolist() == [3, 4]
    assert second.dim == 5 and second.directions() == ("image-to-attributes", "attributes-to-image")
    per_image = cub_attribute_modality("attributes", base, np.array([1, 2]), np.array([3, 4]),
                                       image_ids=np.arange(1, 13), image_labels=np.repeat(np.arange(1, 5), 3))
    assert len(per_image.train) == 6 and len(per_image.test) == 6


@pytest.mark.parametrize("file, lineno, text, expect", [
    ("attributes.txt", 2, "2", "expected 2 columns"),
    ("attributes.txt", 3, "4 has_x::y", "expected attribute id 3"),
    ("class_attribute_labels_continuous.txt", 2, "1 2 3", "expected 5 values"),
    ("class_attribute_labels_continuous.txt", 3, "1 2 x 4 5", "expected a number (attribute 3)"),
    ("class_attribute_labels_continuous.txt", 1, "1 2 300 4 5", "attribute 3 is 300.0"),
    ("image_attribute_labels.txt", 4, "1 4 1", "expected 5 columns"),
    ("image_attribute_labels.txt", 5, "1 5 2 1 0.5", "expected is_present 0 or 1"),
    ("image_attribute_labels.txt", 6, "2 9 1 1 0.5", "attribute id 9 is not in attributes.txt"),
    ("image_attribute_labels.txt", 7, "2 1 0 1 0.5", "listed twice (first at line 6)"),
])
def test_a_malformed_line_is_one_error_naming_the_file_and_line(tmp_path, file, lineno, text, expect):
    base = _base(tmp_path)
    path = base / "attributes" / file
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as err:
        read_cub_attributes(base, per_image=True)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}:{lineno}: ") and expect in message, message


def test_a_missing_attribute_file_names_what_it_should_hold(tmp_path):
    base = _base(tmp_path)
    (base / "attributes" / "class_attribute_labels_continuous.txt").unlink()
    with pytest.raises(DatasetError, match="class_attribute_labels_continuous.txt: file not found"):
        read_cub_attributes(base)


@pytest.mark.parametrize("kind, n_train_b", [("class_attributes", 2), ("attributes", 6)])
def test_cub200_entry_takes_its_attribute_files_as_second_modality(tmp_path, kind, n_train_b):
    from benchmark.data.catalog import check_dataset_entry, load_dataset
    from benchmark.data.paired import paired_of

    root = make_cub_attributes(tmp_path, n_classes=4, per_class=3, n_attributes=5)
    check_dataset_entry("cub200", str(root), {"second_modality": kind, "image_size": 32}, "datasets[0]")
    source = load_dataset("cub200", root=root, second_modality=kind, image_size=32, resize=36)
    second = paired_of(source)
    assert len(second.train) == n_train_b and set(second.test.labels.tolist()) == {3, 4}
    if kind == "attributes":  # each image's own annotation, in the images' order
        attrs = read_cub_attributes(root / "CUB_200_2011", per_image=True)
        np.testing.assert_array_equal(second.train.values.numpy(), attrs.image_values[:6])


def test_cub200_refuses_an_unknown_attribute_modality_naming_the_key(tmp_path):
    from benchmark.data.catalog import check_dataset_entry
    from benchmark.errors import ConfigError

    with pytest.raises(ConfigError, match=r"config key 'datasets\[0\].options.second_modality' must be one of "
                                          r"class_attributes, attributes"):
        check_dataset_entry("cub200", str(tmp_path), {"second_modality": "captions"}, "datasets[0]")
