"""Split manifests: the published totals, and a manifest recorded from a copy refusing a file missing, extra or
renamed, in one line."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmark.data.cars196 import CARS_CLASSES, CARS_IMAGES
from benchmark.data.catalog import load_dataset
from benchmark.data.cub import CUB_CLASSES, CUB_IMAGES
from benchmark.data.inshop import INSHOP_CLASSES, INSHOP_IMAGES
from benchmark.data.sop import SOP_CLASSES, SOP_IMAGES
from benchmark.data.split_manifest import (
    PUBLISHED_FILE,
    describe,
    manifest_document,
    published,
    read_manifest,
    verify_loaded,
)
from benchmark.errors import DatasetError
from tests.data.fixtures import make_cub, make_inshop, make_sop, write_image


@pytest.mark.parametrize("name, images, classes", [
    ("cub200", CUB_IMAGES, CUB_CLASSES), ("cars196", CARS_IMAGES, CARS_CLASSES), ("sop", SOP_IMAGES, SOP_CLASSES),
    ("inshop", INSHOP_IMAGES, INSHOP_CLASSES),
])
def test_published_totals_add_up_to_the_published_datasets(name, images, classes):
    parts = published(name)["parts"]
    assert parts["train"]["images"] + parts["test"]["images"] == images
    assert parts["train"]["classes"] + parts["test"]["classes"] == classes
    if "query" in parts:
        assert parts["query"]["images"] + parts["gallery"]["images"] == parts["test"]["images"]
    # written without the data: no per-class counts or checksums are claimed
    assert all("per_class" not in p and "sha256" not in p for p in parts.values())


def test_published_figures():
    """The figures of the papers (CUB 5,864/5,924; Cars 8,054/8,131; SOP 59,551/60,502; In-shop 25,882 train,
    14,218 query, 12,612 gallery)."""
    names = ("cub200", "cars196", "sop", "inshop")
    got = {n: {p: v["images"] for p, v in published(n)["parts"].items()} for n in names}
    assert got == {"cub200": {"train": 5864, "test": 5924}, "cars196": {"train": 8054, "test": 8131},
                   "sop": {"train": 59551, "test": 60502},
                   "inshop": {"train": 25882, "test": 26830, "query": 14218, "gallery": 12612}}
    assert read_manifest(PUBLISHED_FILE).keys() == {"cub200", "cars196", "sop", "inshop"}


def test_a_fixture_is_refused_by_the_published_totals(tmp_path):
    source = load_dataset("cub200", root=str(make_cub(tmp_path / "cub", n_classes=4, per_class=3)))
    with pytest.raises(DatasetError) as err:
        verify_loaded(source, dataset="cub200", key="cub200")
    assert str(err.value) == ("dataset 'cub200': train has 6 images, the published split (split_manifests.json) "
                              "records 5864 (5858 missing); expected a complete copy (set the dataset's "
                              "verify_split: false to load a subset or a test fixture)")
    verify_loaded(source, dataset="folder", key="mine")  # a dataset with no published split: nothing to check


def _recorded(tmp_path, source, key="cub200"):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(manifest_document({key: describe(source)})))
    return path


def test_recorded_manifest_accepts_the_same_copy_anywhere(tmp_path):
    root = make_cub(tmp_path / "a", n_classes=4, per_class=3, official_files=False)
    manifest = _recorded(tmp_path, load_dataset("cub200", root=str(root)))
    shutil.copytree(root, tmp_path / "b")  # a mirror at another place: paths are recorded relative to the root
    verify_loaded(load_dataset("cub200", root=str(tmp_path / "b")), dataset="cub200", key="cub200",
                  manifest=manifest)
    entry = read_manifest(manifest)["cub200"]["parts"]
    assert entry["train"]["per_class"] == {"1": 3, "2": 3} and entry["test"]["classes"] == 2


@pytest.mark.parametrize("damage, message", [
    (lambda images: sorted((images / "002.Bird_2").iterdir())[0].unlink(),
     "train class 2 has 2 images, the split manifest {m} records 3 (1 missing)"),
    (lambda images: write_image(images / "003.Bird_3" / "stray.jpg", 99),
     "test class 3 has 4 images, the split manifest {m} records 3 (1 extra)"),
    (lambda images: sorted((images / "001.Bird_1").iterdir())[0].rename(images / "001.Bird_1" / "renamed.jpg"),
     "train's sorted file list has checksum"),
])
def test_recorded_manifest_refuses_a_file_missing_extra_or_renamed(tmp_path, damage, message):
    root = make_cub(tmp_path / "cub", n_classes=4, per_class=3, official_files=False)
    manifest = _recorded(tmp_path, load_dataset("cub200", root=str(root)))
    damage(root / "CUB_200_2011" / "images")
    with pytest.raises(DatasetError) as err:
        verify_loaded(load_dataset("cub200", root=str(root)), dataset="cub200", key="cub200", manifest=manifest)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("dataset 'cub200': ")
    assert message.format(m=manifest) in msg


def test_recorded_manifest_of_query_gallery_and_official_list_files(tmp_path):
    inshop = make_inshop(tmp_path / "inshop")
    manifest = _recorded(tmp_path, load_dataset("inshop", root=str(inshop)), key="inshop")
    assert set(read_manifest(manifest)["inshop"]["parts"]) == {"train", "test", "query", "gallery"}
    lines = (inshop / "list_eval_partition.txt").read_text().splitlines()
    lines = [str(int(lines[0]) - 1), *lines[1:-1]]  # the last gallery row left out of the list
    (inshop / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"dataset 'inshop': test class 11 has 2 images, the split manifest .* "
                                           r"records 3 \(1 missing\)"):
        verify_loaded(load_dataset("inshop", root=str(inshop)), dataset="inshop", key="inshop", manifest=manifest)


def test_manifest_files_refused_in_one_line(tmp_path):
    source = load_dataset("sop", root=str(make_sop(tmp_path / "sop")))
    with pytest.raises(DatasetError, match=r"nothing\.json: split manifest not found"):
        verify_loaded(source, dataset="sop", key="sop", manifest=tmp_path / "nothing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"bad\.json: not a readable split manifest \(JSONDecodeError"):
        verify_loaded(source, dataset="sop", key="sop", manifest=tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(DatasetError, match=r"other\.json: not a split manifest"):
        verify_loaded(source, dataset="sop", key="sop", manifest=tmp_path / "other.json")
    manifest = _recorded(tmp_path, source, key="cub200")
    with pytest.raises(DatasetError, match=r"splits\.json: the split manifest records no dataset 'sop' \(it records "
                                           r"'cub200'\)"):
        verify_loaded(source, dataset="sop", key="sop", manifest=manifest)
