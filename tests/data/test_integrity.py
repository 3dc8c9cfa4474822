"""Checks of a loaded file dataset: paths inside the root, each image once, readable image headers."""

from __future__ import annotations

import pytest
from PIL import Image

from benchmark.data.catalog import load_dataset
from benchmark.data.integrity import check_file_dataset, check_image_header
from benchmark.errors import DatasetError
from tests.data.fixtures import make_cub, make_image_folder, make_inshop, write_image


def test_valid_datasets_pass(tmp_path):
    check_file_dataset(load_dataset("folder", root=make_image_folder(tmp_path / "f", n_classes=4)))
    check_file_dataset(load_dataset("cub200", root=make_cub(tmp_path / "c")))
    check_file_dataset(load_dataset("inshop", root=make_inshop(tmp_path / "i")))
    check_file_dataset(load_dataset("builtin", num_classes=8, images_per_class=2, cache=False))  # in memory


def test_a_link_inside_the_root_to_an_unlisted_file_passes(tmp_path):
    root = make_image_folder(tmp_path / "f", n_classes=4)
    spare = write_image(root / ".spare" / "x.jpg", 5)  # hidden: not listed itself
    (root / "class_a" / "linked.jpg").symlink_to(spare)
    check_file_dataset(load_dataset("folder", root=root))


def test_truncated_png_header(tmp_path):
    path = write_image(tmp_path / "x.png")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DatasetError, match="x.png"):
        check_image_header(path)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="missing"):
        check_image_header(tmp_path / "nope.jpg")


def test_header_check_cost(tmp_path):
    """Measured: about 0.1 ms per 500 x 375 JPEG; allow 50x that on a loaded machine."""
    import time

    paths = []
    for i in range(100):
        p = tmp_path / f"{i}.jpg"
        Image.new("RGB", (500, 375), (i, 2 * i, 3 * i)).save(p)
        paths.append(p)
    start = time.perf_counter()
    for p in paths:
        check_image_header(p)
    assert (time.perf_counter() - start) / len(paths) < 5e-3
