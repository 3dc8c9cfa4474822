"""Every bad input is refused through the CLI before anything is written.

One table of bad inputs (config keys and their ranges, command-line flags, config files, the
output folder, the storage URL, dataset trees and image files). Each goes through ``main()`` and
must give exit status 2, exactly one stderr line ``error: ...`` naming the key or file, no
traceback, no run folder, and nothing new under the test's folder; a few go through a real
``python run_benchmark.py`` process as well. Config errors fail before any dataset is loaded, and
the dataset cases use tiny image folders with an untrained trunk, so the whole table takes seconds.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main
from tests.data.fixtures import (
    make_cars196_devkit,
    make_csv,
    make_cub,
    make_image_folder,
    make_oml,
    make_sop,
    write_corrupt_image,
    write_image,
)
from tests.models.weight_caches import isolate_weight_caches

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cr3tpw"

#: A small folder-dataset config: untrained small CNN, 2 folds, batches of 2 classes x 2 images.
DATA_CONFIG = """\
name: bad-input
methods: [contrastive]
model: {{trunk: small_cnn, pretrained: false}}
datasets:
  - name: {name}
    root: {root}
    options: {{image_size: 32, resize: 36}}
training: {{batch_size: 4, m_per_class: 2, iterations_per_epoch: 2, max_epochs: 1}}
protocol: {{n_folds: 2, n_trials: 1, n_repeats: 1}}
"""


@dataclass
class Case:
    """``make(tmp_path)`` writes the case's inputs and returns the arguments after ``run``;
    the error line must contain every string of ``expect``."""

    id: str
    make: Callable[[Path], list[str]]
    expect: tuple[str, ...]
    forbid: tuple[str, ...] = field(default=())


def smoke(*args: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["--preset", "smoke", *args]


def sets(*overrides: str) -> Callable[[Path], list[str]]:
    return smoke(*[a for o in overrides for a in ("--set", o)])


def config_text(text: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "c.yaml").write_text(text)
        return ["--config", str(tmp / "c.yaml")]
    return make


def smoke_with(extra: str) -> Callable[[Path], list[str]]:
    """The smoke preset's methods with extra YAML (e.g. another datasets list)."""
    return config_text("name: x\nmethods: [contrastive]\n" + extra)


def dataset(name: str, build: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    """A config whose one dataset is ``name`` at the root ``build(tmp)`` returns."""
    def make(tmp: Path) -> list[str]:
        root = build(tmp)
        (tmp / "c.yaml").write_text(DATA_CONFIG.format(name=name, root=root))
        return ["--config", str(tmp / "c.yaml")]
    return make


# --------------------------------------------------------------------------- dataset builders

def folder(tmp: Path) -> Path:
    return make_image_folder(tmp / "imgs", n_classes=8)


def folder_with(damage: Callable[[Path], None]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        root = folder(tmp)
        damage(root)
        return root
    return build


def first_image(root: Path) -> Path:
    return sorted(root.rglob("*.jpg"))[0]


def corrupt(root: Path) -> None:
    write_corrupt_image(root / "class_c" / "0.jpg")


def empty(root: Path) -> None:
    (root / "class_d" / "0.jpg").write_bytes(b"")


def text_as_png(root: Path) -> None:
    (root / "class_e" / "1.png").write_text("hello, I am a text file\n")


def linked_class_to_parent(root: Path) -> None:
    (root / "zz_loop").symlink_to(root, target_is_directory=True)


def linked_class_to_class(root: Path) -> None:
    (root / "zz_copy").symlink_to(root / "class_a", target_is_directory=True)


def image_linked_outside(root: Path) -> None:
    outside = write_image(root.parent / "elsewhere" / "outside.jpg", 99)
    (root / "class_b" / "outside.jpg").symlink_to(outside)


def image_linked_into_other_class(root: Path) -> None:
    (root / "class_h" / "dup.jpg").symlink_to(root / "class_a" / "0.jpg")


def csv_with(rows: list[str], *, split: bool = False) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = make_csv(tmp / "data" / "list.csv", n_classes=8, per_class=3, split=split)
        with path.open("a") as f:
            f.write("\n".join(rows) + "\n")
        return path
    return build


def outside_image(tmp: Path) -> Path:
    return write_image(tmp / "elsewhere.jpg", 7)


def oml_classification(tmp: Path) -> Path:
    return make_oml(tmp / "oml" / "df.csv", n_classes=8, per_class=3, split="classification")


def cars_devkit_unlabelled_test(tmp: Path) -> Path:
    root = make_cars196_devkit(tmp / "cars", n_classes=8, per_class=3)
    (root / "cars_test_annos_withlabels.mat").rename(root / "cars_test_annos.mat")
    return root


def dataset_with(name: str, build: Callable[[Path], Path], extra: str) -> Callable[[Path], list[str]]:
    """``dataset(name, build)`` with ``extra`` (keys of the dataset entry, e.g. ``image_root: x``) added."""
    def make(tmp: Path) -> list[str]:
        root = build(tmp)
        text = DATA_CONFIG.format(name=name, root=root).replace(f"    root: {root}\n",
                                                                f"    root: {root}\n    {extra}\n")
        (tmp / "c.yaml").write_text(text)
        return ["--config", str(tmp / "c.yaml")]
    return make


def csv_dotdot(tmp: Path) -> Path:
    outside_image(tmp)
    return csv_with(["../elsewhere.jpg,cat_1"])(tmp)


def cub_corrupt(tmp: Path) -> Path:
    root = make_cub(tmp / "cub", n_classes=8, per_class=3)
    write_corrupt_image(sorted((root / "CUB_200_2011" / "images").rglob("*.jpg"))[-1])
    return root


def sop_escaping(tmp: Path) -> Path:
    root = make_sop(tmp / "sop", n_train_classes=4, n_test_classes=4, per_class=2)
    write_image(tmp / "stray.JPG", 3)
    with (root / "Ebay_test.txt").open("a") as f:
        f.write("99 8 1 ../stray.JPG\n")
    return root


def out_is_file(tmp: Path) -> list[str]:
    (tmp / "taken").write_text("mine\n")
    return ["--preset", "smoke", "--out", str(tmp / "taken")]


def out_parent_is_file(tmp: Path) -> list[str]:
    (tmp / "plain.txt").write_text("mine\n")
    return ["--preset", "smoke", "--out", str(tmp / "plain.txt" / "run")]


def out_holds_other_files(tmp: Path) -> list[str]:
    (tmp / "docs").mkdir()
    (tmp / "docs" / "thesis.tex").write_text("\\documentclass{article}\n")
    return ["--preset", "smoke", "--out", str(tmp / "docs")]


def weights_file(*overrides: str) -> Callable[[Path], list[str]]:
    """The smoke preset with ``overrides`` and ``model.weights`` naming an existing file."""
    def make(tmp: Path) -> list[str]:
        (tmp / "w.pth").write_bytes(b"weights")
        return sets(*overrides, f"model.weights={tmp / 'w.pth'}")(tmp)
    return make


def config_dir(tmp: Path) -> list[str]:
    (tmp / "cfgdir").mkdir()
    return ["--config", str(tmp / "cfgdir")]


def config_latin1(tmp: Path) -> list[str]:
    (tmp / "c.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    return ["--config", str(tmp / "c.yaml")]


def sqlite_in_missing_folder(tmp: Path) -> list[str]:
    return ["--preset", "smoke", "--storage", f"sqlite:///{tmp}/nowhere/runs.db"]


CASES = [
    # model
    Case("embedding_dim_zero", sets("model.embedding_dim=0"), ("model.embedding_dim",)),
    Case("embedding_dim_negative", sets("model.embedding_dim=-5"), ("model.embedding_dim",)),
    Case("embedding_dim_float", sets("model.embedding_dim=1.5"), ("model.embedding_dim", "int")),
    Case("pretrained_string", config_text("name: x\nmodel: {pretrained: 'yes please'}\n"), ("model.pretrained",)),
    Case("pretrain_epochs_zero", sets("model.pretrain_epochs=0"), ("model.pretrain_epochs",)),
    Case("trunk_unknown", sets("model.trunk=vit"), ("model.trunk",)),
    Case("trunk_timm_unknown", sets("model.trunk=timm:resnet_5O"), ("model.trunk", "not a timm model")),
    Case("trunk_timm_bad_tag", sets("model.trunk=timm:resnet18.in99k"), ("model.trunk", "in99k")),
    Case("weights_missing", sets("model.trunk=bn_inception", "model.weights=/no/such/bn.pth"),
         ("model.weights", "/no/such/bn.pth")),
    Case("weights_for_small_cnn", weights_file("model.trunk=small_cnn"), ("model.weights", "small_cnn")),
    Case("weights_without_pretrained", weights_file("model.trunk=bn_inception", "model.pretrained=false"),
         ("model.weights", "model.pretrained")),
    Case("bn_inception_not_cached", sets("model.trunk=bn_inception"),
         ("bn_inception-52deb4733.pth", "torch-home", "model.weights")),
    Case("timm_weights_not_cached", sets("model.trunk=timm:test_resnet"),
         ("timm/test_resnet.r160_in1k", "model.safetensors", "hf-cache", "model.pretrained: false")),
    # training
    Case("eval_batch_size_zero", sets("training.eval_batch_size=0"), ("training.eval_batch_size",)),
    Case("num_workers_negative", sets("training.num_workers=-1"), ("training.num_workers",)),
    Case("num_workers_huge", sets("training.num_workers=100000"), ("training.num_workers",)),
    Case("num_workers_word", sets("training.num_workers=many"), ("training.num_workers", "auto")),
    Case("num_workers_float", sets("training.num_workers=2.5"), ("training.num_workers", "int or str")),
    Case("num_workers_bool", sets("training.num_workers=true"), ("training.num_workers",)),
    Case("batch_size_zero", sets("training.batch_size=0"), ("training.batch_size",)),
    Case("batch_not_multiple", sets("training.batch_size=30"), ("training.batch_size", "m_per_class")),
    Case("m_per_class_zero", sets("training.m_per_class=0"), ("training.m_per_class",)),
    Case("iterations_zero", sets("training.iterations_per_epoch=0"), ("training.iterations_per_epoch",)),
    Case("max_epochs_negative", sets("training.max_epochs=-1"), ("training.max_epochs",)),
    Case("val_interval_zero", sets("training.val_interval=0"), ("training.val_interval",)),
    Case("patience_zero", sets("training.patience=0"), ("training.patience",)),
    Case("patience_below_val_interval", sets("training.val_interval=3", "training.patience=2"),
         ("training.patience", "val_interval")),
    Case("lr_trunk_negative", sets("training.lr_trunk=-0.1"), ("training.lr_trunk",)),
    Case("lr_embedder_nan", sets("training.lr_embedder=.nan"), ("training.lr_embedder", "finite")),
    Case("weight_decay_inf", sets("training.weight_decay=.inf"), ("training.weight_decay", "finite")),
    Case("momentum_one", sets("training.momentum=1"), ("training.momentum",)),
    Case("momentum_negative", sets("training.momentum=-0.5"), ("training.momentum",)),
    Case("optimizer_unknown", sets("training.optimizer=lbfgs"), ("training.optimizer",)),
    Case("lr_string", sets("training.lr_trunk=fast"), ("training.lr_trunk", "float")),
    Case("training_unknown_key", sets("training.lr=1"), ("training.lr",)),
    Case("amp_unknown", sets("training.amp=half"), ("training.amp", "fp32")),
    Case("amp_off_is_a_yaml_bool", sets("training.amp=off"), ("training.amp", "str")),
    Case("memory_format_unknown", sets("training.memory_format=nhwc"), ("training.memory_format",)),
    Case("compile_string", sets("training.compile=maybe"), ("training.compile", "bool")),
    Case("early_stopping_unknown", sets("training.early_stopping=soon"), ("training.early_stopping", "published")),
    Case("loss_weight_decay_negative", sets("training.loss_weight_decay=-1e-4"), ("training.loss_weight_decay",)),
    # protocol
    Case("folds_one", smoke("--folds", "1"), ("protocol.n_folds",)),
    Case("trials_zero", smoke("--trials", "0"), ("protocol.n_trials",)),
    Case("repeats_negative", smoke("--repeats", "-2"), ("protocol.n_repeats",)),
    Case("folds_more_than_classes", smoke("--folds", "50"), ("50", "folds")),
    Case("startup_trials_negative", sets("protocol.n_startup_trials=-1"), ("protocol.n_startup_trials",)),
    Case("startup_trials_keyword", sets("protocol.n_startup_trials=soon"), ("protocol.n_startup_trials", "auto")),
    Case("diverged_trial_unknown", sets("protocol.diverged_trial=skip"), ("protocol.diverged_trial", "zero")),
    Case("grace_period_zero", sets("protocol.grace_period=0"), ("protocol.grace_period",)),
    Case("poll_interval_zero", sets("protocol.poll_interval=0"), ("protocol.poll_interval",)),
    Case("poll_interval_negative", sets("protocol.poll_interval=-1"), ("protocol.poll_interval",)),
    Case("sampler_unknown", sets("protocol.sampler=cmaes"), ("protocol.sampler",)),
    Case("fold_mode_unknown", sets("protocol.fold_mode=nope"), ("protocol.fold_mode",)),
    Case("pruner_unknown", sets("protocol.pruner=sometimes"), ("protocol.pruner", "hyperband")),
    Case("pruning_replaced", sets("protocol.pruning=true"), ("protocol.pruning", "pruner")),
    Case("budget_string", sets("protocol.budget_iterations=lots"), ("protocol.budget_iterations", "int")),
    Case("budget_below_one_trial", sets("protocol.budget_iterations=39"), ("protocol.budget_iterations", "40")),
    # evaluation
    Case("recall_at_zero", sets("evaluation.recall_at=[0]"), ("evaluation.recall_at",)),
    Case("recall_at_empty", sets("evaluation.recall_at=[]"), ("evaluation.recall_at",)),
    Case("recall_at_repeated", sets("evaluation.recall_at=[1,1]"), ("evaluation.recall_at",)),
    Case("recall_at_float", sets("evaluation.recall_at=[1.5]"), ("evaluation.recall_at",)),
    Case("far_five", sets("evaluation.verification_far=5"), ("evaluation.verification_far",)),
    Case("far_zero", sets("evaluation.verification_far=0"), ("evaluation.verification_far",)),
    Case("far_one", sets("evaluation.verification_far=1"), ("evaluation.verification_far",)),
    # top level and flags
    Case("seed_negative", smoke("--seed", "-1"), ("seed",)),
    Case("seed_not_int", smoke("--seed", "abc"), ("--seed",)),
    Case("device_unknown", smoke("--device", "tpu"), ("device",)),
    Case("device_missing_gpu", smoke("--device", "cuda:99"), ("device", "cuda:99")),
    Case("method_unknown", smoke("--methods", "nope"), ("nope",)),
    Case("method_twice", smoke("--methods", "contrastive,contrastive"), ("methods",)),
    Case("name_escapes", sets("name=../escape"), ("'name'",)),
    Case("override_without_value", smoke("--set", "training.max_epochs"), ("KEY=VALUE",)),
    # datasets (config side)
    Case("dataset_unknown", smoke("--datasets", "nope"), ("datasets[0].name", "nope")),
    Case("builtin_num_classes", smoke_with("datasets: [{name: builtin, options: {num_classes: 2}}]\n"),
         ("datasets[0].options.num_classes",)),
    Case("builtin_bias", smoke_with("datasets: [{name: builtin, options: {context_bias: 2}}]\n"),
         ("datasets[0].options.context_bias",)),
    Case("dataset_unknown_option", smoke_with("datasets: [{name: builtin, options: {colour: red}}]\n"),
         ("datasets[0].options.colour",)),
    Case("builtin_with_root", smoke_with("datasets: [{name: builtin, root: /data}]\n"), ("datasets[0].root",)),
    Case("cub_without_root", smoke_with("datasets: [cub200]\n"), ("datasets[0].root",)),
    Case("dataset_training_type", smoke_with("datasets: [{name: builtin, training: {batch_size: x}}]\n"),
         ("datasets[0].training.batch_size",)),
    Case("dataset_training_range", smoke_with("datasets: [{name: builtin, training: {eval_batch_size: 0}}]\n"),
         ("datasets[0].training.eval_batch_size",)),
    Case("dataset_recall_at", smoke_with("datasets: [{name: builtin, recall_at: [0]}]\n"),
         ("datasets[0].recall_at",)),
    Case("dataset_label_path", smoke_with("datasets: [{name: builtin, label: a/b}]\n"), ("datasets[0].label",)),
    Case("folder_image_size", smoke_with("datasets: [{name: folder, root: /x, options: {image_size: 0}}]\n"),
         ("datasets[0].options.image_size",)),
    # config files
    Case("config_missing", lambda tmp: ["--config", str(tmp / "absent.yaml")], ("absent.yaml",)),
    Case("config_directory", config_dir, ("cfgdir", "not a file")),
    Case("config_bad_yaml", config_text("name: [unclosed\n"), ("c.yaml", "YAML")),
    Case("config_not_utf8", config_latin1, ("c.yaml", "UTF-8")),
    Case("config_list", config_text("- a\n- b\n"), ("c.yaml", "mapping")),
    # output folder
    Case("out_is_file", out_is_file, ("taken", "is a file")),
    Case("out_parent_is_file", out_parent_is_file, ("plain.txt", "cannot be created")),
    Case("out_not_a_run_folder", out_holds_other_files, ("docs", "not a run folder")),
    # storage
    Case("storage_malformed", smoke("--storage", "not a url"), ("protocol.storage", "not a storage URL")),
    Case("storage_unknown_dialect", smoke("--storage", f"foo://u:{SECRET}@h/db"), ("protocol.storage", "foo"),
         (SECRET,)),
    Case("storage_missing_driver", smoke("--storage", f"mysql://u:{SECRET}@localhost/db"),
         ("protocol.storage", "not installed", "pip install"), (SECRET,)),
    Case("storage_unreachable", smoke("--storage", f"postgresql://u:{SECRET}@127.0.0.1:1/db"),
         ("protocol.storage", "127.0.0.1"), (SECRET,)),
    Case("storage_sqlite_no_folder", sqlite_in_missing_folder, ("protocol.storage", "nowhere")),
    # dataset trees and image files
    Case("folder_missing", dataset("folder", lambda tmp: tmp / "nowhere"), ("nowhere",)),
    Case("image_corrupt", dataset("folder", folder_with(corrupt)), ("class_c/0.jpg", "corrupt")),
    Case("image_empty", dataset("folder", folder_with(empty)), ("class_d/0.jpg", "empty")),
    Case("image_is_text", dataset("folder", folder_with(text_as_png)), ("class_e/1.png",)),
    Case("class_folder_links_to_parent", dataset("folder", folder_with(linked_class_to_parent)),
         ("zz_loop", "symbolic link")),
    Case("class_folder_links_to_class", dataset("folder", folder_with(linked_class_to_class)),
         ("zz_copy", "symbolic link")),
    Case("image_links_outside", dataset("folder", folder_with(image_linked_outside)),
         ("outside.jpg", "outside the dataset root")),
    Case("image_in_two_classes", dataset("folder", folder_with(image_linked_into_other_class)),
         ("0.jpg", "two classes")),
    Case("csv_dotdot_path", dataset("csv", csv_dotdot), ("elsewhere.jpg", "outside the dataset root")),
    Case("oml_classification_split", dataset("oml", oml_classification),
         ("df.csv", "is in both splits", "class_split: first_half")),
    Case("cars_devkit_test_without_labels", dataset("cars196", cars_devkit_unlabelled_test),
         ("cars_test_annos_withlabels.mat", "file not found")),
    Case("cub_fixture_not_the_published_split", dataset("cub200", lambda tmp: make_cub(tmp / "cub", n_classes=8)),
         ("dataset 'cub200'", "records 5864", "verify_split: false")),
    Case("cub_split_manifest_missing", dataset_with("cub200", lambda tmp: make_cub(tmp / "cub", n_classes=8),
                                                    "split_manifest: nowhere.json"),
         ("nowhere.json", "split manifest not found")),
    Case("image_root_on_a_folder_dataset", dataset_with("folder", folder, "image_root: /data"),
         ("datasets[0].image_root", "only a list-file dataset")),
    Case("split_manifest_on_builtin", sets("datasets[0].split_manifest=s.json"),
         ("datasets[0].split_manifest", "dataset of image files")),
    Case("csv_two_classes", dataset("csv", csv_with(["images/0_0.jpg,cat_5"])), ("0_0.jpg", "two classes")),
    Case("csv_row_twice", dataset("csv", csv_with(["images/1_1.jpg,cat_1"])), ("1_1.jpg", "twice")),
    Case("csv_train_and_test", dataset("csv", csv_with(["images/0_0.jpg,cat_7,test"], split=True)),
         ("0_0.jpg", "train", "test")),
    Case("cub_corrupt_image", dataset("cub200", cub_corrupt), ("Bird_8_0002_24.jpg", "corrupt")),
    Case("sop_path_escapes", dataset("sop", sop_escaping), ("stray.JPG", "outside the dataset root")),
]

# --------------------------------------------------------------------------- issue #27: inputs by kind

FEATURES_CONFIG = """\
name: bad-input
methods: [contrastive]
datasets: [{{name: features, root: {root}}}]
training: {{batch_size: 4, m_per_class: 2, iterations_per_epoch: 2, max_epochs: 1, regime: frozen}}
protocol: {{n_folds: 2, n_trials: 1, n_repeats: 1}}
"""


def features(write: Callable[[Path, np.ndarray, np.ndarray], Path]) -> Callable[[Path], list[str]]:
    """A features dataset at the root ``write(tmp, features, labels)`` returns (8 classes x 4 rows of 6 values)."""
    def make(tmp: Path) -> list[str]:
        x = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)
        root = write(tmp, x, np.repeat(np.arange(8), 4))
        (tmp / "c.yaml").write_text(FEATURES_CONFIG.format(root=root))
        return ["--config", str(tmp / "c.yaml")]
    return make


def npz(**change) -> Callable[[Path, np.ndarray, np.ndarray], Path]:
    """``feats.npz`` with the arrays ``features`` and ``labels``, changed by ``change`` (key -> f(x, y) or None)."""
    def write(tmp: Path, x: np.ndarray, y: np.ndarray) -> Path:
        arrays = {"features": x, "labels": y}
        for key, f in change.items():
            if f is None:
                arrays.pop(key)
            else:
                arrays[key] = f(x, y)
        np.savez(tmp / "feats.npz", **arrays)
        return tmp / "feats.npz"
    return write


def npy_file(tmp: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.save(tmp / "feats.npy", x)
    return tmp / "feats.npy"


def npy_folder_pickled_labels(tmp: Path, x: np.ndarray, y: np.ndarray) -> Path:
    (tmp / "feats").mkdir()
    np.save(tmp / "feats" / "features.npy", x)
    np.save(tmp / "feats" / "labels.npy", np.array([{"id": int(v)} for v in y], dtype=object), allow_pickle=True)
    return tmp / "feats"


def csv_lines(*, replace: dict[int, str], integer_labels: bool = False) -> Callable[[Path], Path]:
    """``list.csv`` (8 classes x 3 images, header on line 1) with the given lines replaced; a row's
    image may be new (``images/new.jpg`` is written)."""
    def build(tmp: Path) -> Path:
        path = make_csv(tmp / "data" / "list.csv", n_classes=8, per_class=3, string_labels=not integer_labels)
        write_image(path.parent / "images" / "new.jpg", 99)
        lines = path.read_text().splitlines()
        for lineno, text in replace.items():
            lines[lineno - 1] = text
        path.write_text("\n".join(lines) + "\n")
        return path
    return build


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header says ``width x height`` (1-bit grey) and whose data is a few bytes: PIL's
    decompression-bomb check sees the size without anything large on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def bomb(side: int) -> Callable[[Path], None]:
    return lambda root: png_header_only(root / "class_f" / "big.png", side, side)


def float_pixels(root: Path) -> None:
    Image.fromarray(np.ones((8, 8), dtype=np.float32)).save(root / "class_g" / "depth.tif")


def truncated(name: str) -> Callable[[Path], None]:
    """A noisy 64 x 64 image ``class_a/<name>`` cut to half its bytes."""
    def damage(root: Path) -> None:
        path = root / "class_a" / name
        Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return damage


def link_to_nowhere(root: Path) -> None:
    (root / "class_c" / "gone.jpg").symlink_to(root.parent / "unmounted" / "gone.jpg")


def link_loop(root: Path) -> None:
    (root / "class_d" / "a.jpg").symlink_to(root / "class_d" / "b.jpg")
    (root / "class_d" / "b.jpg").symlink_to(root / "class_d" / "a.jpg")


def named_pipe(root: Path) -> None:
    os.mkfifo(root / "class_e" / "stream.png")


def out_with_stored_config(text: str) -> Callable[[Path], list[str]]:
    """An earlier run folder whose ``config.resolved.yaml`` now holds ``text`` (edited by hand, or cut short)."""
    def make(tmp: Path) -> list[str]:
        (tmp / "old").mkdir()
        (tmp / "old" / "config.resolved.yaml").write_text(text)
        return ["--preset", "smoke", "--out", str(tmp / "old")]
    return make


def corrupt_image_named_with_a_line_break(root: Path) -> None:
    write_corrupt_image(root / "class_b" / "scan\n2.jpg")


def train_val_test(tmp: Path) -> Path:
    """An ImageNet-style layout: train/, val/ and test/ class folders (val/ would be silently left out)."""
    for split, classes in (("train", "abcd"), ("val", "ef"), ("test", "ghij")):
        for c in classes:
            for i in range(2):
                write_image(tmp / "tvt" / split / f"class_{c}" / f"{i}.jpg", ord(c) * 10 + i)
    return tmp / "tvt"


def out_inside(name: str, build: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    """A dataset config with ``--out`` inside the dataset's root."""
    def make(tmp: Path) -> list[str]:
        return [*dataset(name, build)(tmp), "--out", str(tmp / "imgs" / "results")]
    return make


def with_nan(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[5, 2] = np.nan
    return x


def float_labels_with_nan(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = y.astype(np.float64)
    out[9] = np.nan
    return out



def preset_and(*args: str) -> Callable[[Path], list[str]]:
    """The smoke preset with extra flags (``args`` may name a flag with an empty value)."""
    return lambda tmp: ["--preset", "smoke", *args]


CASES += [
    # YAML: a key given twice (PyYAML would keep the last value without a word)
    Case("yaml_duplicate_key", config_text("name: x\nmethods: [contrastive]\nname: y\n"),
         ("c.yaml", "'name'", "lines 1 and 3")),
    Case("yaml_duplicate_section", config_text("name: x\ntraining:\n  batch_size: 8\nprotocol: {n_folds: 2}\n"
                                               "training:\n  max_epochs: 1\n"),
         ("c.yaml", "'training'", "lines 2 and 5")),
    Case("yaml_duplicate_nested_key", config_text("name: x\ntraining:\n  batch_size: 8\n  m_per_class: 2\n"
                                                  "  batch_size: 16\n"),
         ("c.yaml", "'batch_size'", "lines 3 and 5")),
    Case("yaml_duplicate_in_flow_mapping", config_text("name: x\nmodel: {trunk: small_cnn, trunk: resnet50}\n"),
         ("c.yaml", "'trunk'", "lines 2 and 2")),
    Case("yaml_duplicate_in_set_value", sets("training={batch_size: 8, batch_size: 16}"),
         ("--set", "'batch_size'")),
    # flags given empty: refused, not ignored
    Case("methods_empty", preset_and("--methods", ""), ("--methods is empty",)),
    Case("methods_only_commas", preset_and("--methods", " , "), ("--methods is empty",)),
    Case("datasets_empty", preset_and("--datasets", ""), ("--datasets is empty",)),
    Case("out_empty", preset_and("--out", ""), ("--out is empty",)),
    Case("storage_empty", preset_and("--storage", ""), ("--storage is empty",)),
    Case("device_empty", preset_and("--device", " "), ("--device is empty",)),
    Case("preset_empty", lambda tmp: ["--preset", ""], ("--preset is empty",)),
    Case("config_empty", lambda tmp: ["--config", ""], ("--config is empty",)),
    # fold counts against the classes, before the run folder exists (else: a failure at the first evaluation)
    Case("folds_one_validation_class_each", smoke("--folds", "20"), ("20 class-disjoint folds", "at most 10")),
    Case("folds_leave_too_few_batch_classes", sets("training.batch_size=64"),
         ("dataset 'builtin'", "a fold trains on only 10 classes", "batch of 64", "needs 16")),
    Case("csv_every_class_one_image", dataset("csv", lambda tmp: make_csv(tmp / "d" / "list.csv", n_classes=8,
                                                                          per_class=1)),
         ("dataset 'csv'", "the test set has 4 class(es) with at most 1 image(s)")),
    # features files: every problem names the file and the key
    Case("features_npy_not_npz", features(npy_file), ("feats.npy", "a single .npy array", "not an .npz archive")),
    Case("features_labels_need_pickle", features(npz(labels=lambda x, y: np.array([str(v) for v in y] + [None])[:-1]
                                                     .astype(object))),
         ("feats.npz", "key 'labels' holds Python objects", "integer or string array")),
    Case("features_folder_labels_need_pickle", features(npy_folder_pickled_labels),
         ("labels.npy", "key 'labels' holds Python objects")),
    Case("features_nan", features(npz(features=with_nan)), ("feats.npz", "key 'features'", "NaN", "row 5, column 2")),
    Case("features_three_dimensional", features(npz(features=lambda x, y: x[:, :, None])),
         ("feats.npz", "key 'features'", "N x D", "(32, 6, 1)")),
    Case("features_integers", features(npz(features=lambda x, y: (x * 10).astype(np.int32))),
         ("feats.npz", "key 'features'", "floating-point", "int32")),
    Case("features_labels_missing", features(npz(labels=None, feats=lambda x, y: y)),
         ("feats.npz", "key 'labels' is missing", "'feats'")),
    Case("features_labels_nan", features(npz(labels=float_labels_with_nan)),
         ("feats.npz", "key 'labels'", "NaN", "row 9")),
    Case("features_labels_short", features(npz(labels=lambda x, y: y[:-1])),
         ("feats.npz", "key 'labels'", "one label per row", "(31,)")),
    # CSV files: strict parsing, the file and line named
    Case("csv_unclosed_quote", dataset("csv", csv_lines(replace={3: '"images/0_1.jpg,cat_0'})),
         ("list.csv:3:", "malformed CSV row", "unclosed quote")),
    Case("csv_quote_runs_over_lines", dataset("csv", csv_lines(replace={3: 'images/0_1.jpg,"cat_0',
                                                                        6: 'images/1_1.jpg,cat_1"'})),
         ("list.csv:3:", "runs on to line 6")),
    Case("csv_stray_quote", dataset("csv", csv_lines(replace={4: 'images/0_2.jpg,"cat"_0'})),
         ("list.csv:4:", "malformed CSV row")),
    Case("csv_extra_column", dataset("csv", csv_lines(replace={5: "images/1_0.jpg,cat_1,oops"})),
         ("list.csv:5:", "expected 2 columns", "found 3")),
    Case("csv_nan_label_among_integers", dataset("csv", csv_lines(replace={7: "images/new.jpg,NaN"},
                                                                  integer_labels=True)),
         ("list.csv:7:", "the label is missing", "'NaN'")),
    Case("csv_word_among_integer_labels", dataset("csv", csv_lines(replace={9: "images/new.jpg,twenty"},
                                                                   integer_labels=True)),
         ("list.csv:9:", "'twenty' is not an integer", "all integer class ids or all class names")),
    # images: refused at the header check (before the run folder), one line naming the file
    Case("image_decompression_bomb", dataset("folder", folder_with(bomb(20_000))),
         ("class_f/big.png", "too large to decode safely", "exceeds limit of 178956970", "decompression-bomb")),
    Case("image_over_bomb_warning_limit", dataset("folder", folder_with(bomb(10_000))),
         ("class_f/big.png", "too large to decode safely", "exceeds limit of 89478485")),
    Case("image_float_pixels", dataset("folder", folder_with(float_pixels)),
         ("class_g/depth.tif", "pixel mode F", "no conversion to 8-bit RGB")),
    Case("image_truncated_jpeg", dataset("folder", folder_with(truncated("0.jpg"))),
         ("class_a/0.jpg", "image file is truncated")),
    Case("image_truncated_png", dataset("folder", folder_with(truncated("cut.png"))),
         ("class_a/cut.png", "corrupt or unreadable image")),
    # image names that are not files: refused, not skipped (the dataset would be silently smaller)
    Case("image_link_broken", dataset("folder", folder_with(link_to_nowhere)),
         ("class_c/gone.jpg", "broken symbolic link", "unmounted/gone.jpg")),
    Case("image_link_loop", dataset("folder", folder_with(link_loop)), ("class_d/a.jpg", "symbolic link loop")),
    Case("image_named_pipe", dataset("folder", folder_with(named_pipe)), ("class_e/stream.png", "not a regular file")),
    # counts and seconds past any real run (they ran: 2e23 units planned; time.sleep overflowed)
    Case("trials_huge", smoke("--trials", "99999999999999999999999"), ("protocol.n_trials", "[1, 1000000]")),
    Case("repeats_huge", smoke("--repeats", str(2**63)), ("protocol.n_repeats", "[1, 1000000]")),
    Case("poll_interval_huge", sets("protocol.poll_interval=1e300"), ("protocol.poll_interval", "604800")),
    # YAML keys that are numbers or null beside words (sorting the unknown keys raised TypeError)
    Case("config_number_and_word_keys", config_text("1: a\nfoo: b\n"), ("unknown config key '1'",)),
    Case("config_null_key_in_section", config_text("name: x\nmodel: {1: a, trunk: small_cnn, null: c}\n"),
         ("unknown config key 'model.1'",)),
    # a run folder's stored config damaged: named, not a traceback from the YAML reader
    Case("stored_config_not_yaml", out_with_stored_config("name: smoke\nseed: [0\n"),
         ("config.resolved.yaml", "cannot be read as the run's config", "another --out")),
    Case("stored_config_duplicate_key", out_with_stored_config("name: smoke\nseed: 0\nseed: 1\n"),
         ("config.resolved.yaml", "'seed'", "lines 2 and 3")),
    # output folder names past the file system's limits (a traceback from is_dir: ENAMETOOLONG)
    Case("out_name_too_long", lambda tmp: ["--preset", "smoke", "--out", str(tmp / ("a" * 300))],
         ("cannot be created", "300 bytes long", "255")),
    Case("out_path_too_long", lambda tmp: ["--preset", "smoke", "--out", str(tmp.joinpath(*["b" * 200] * 20))],
         ("cannot be used", "choose a shorter --out")),
    # a file name with a line break: still one line (the break shown as \\n)
    Case("image_name_with_line_break", dataset("folder", folder_with(corrupt_image_named_with_a_line_break)),
         ("class_b/scan\\n2.jpg", "corrupt")),
    # labels marking "unlabelled" and Windows paths, as a lab's own lists have them
    Case("csv_negative_label", dataset("csv", csv_lines(replace={8: "images/new.jpg,-1"}, integer_labels=True)),
         ("list.csv:8:", "label -1 is negative", "unlabelled")),
    Case("features_negative_labels", features(npz(labels=lambda x, y: np.where(np.arange(len(y)) == 3, -1, y))),
         ("feats.npz", "key 'labels'", "1 negative label(s) (-1 at row 3")),
    Case("csv_windows_path", dataset("csv", csv_lines(replace={4: "images\\0_2.jpg,cat_0"})),
         ("images\\0_2.jpg: image file is missing", "list.csv:4", "a Windows path?")),
    Case("folder_train_val_test", dataset("folder", train_val_test), ("tvt: holds train/ and test/ and also val/",
                                                                      "would be left out")),
    # a relative root, as a batch job started in another folder sees it (the test runs in its tmp folder)
    Case("folder_relative_root_missing", dataset("folder", lambda tmp: Path("my_images")),
         ("my_images: folder not found in the current folder", "test_bad_input_is_refused")),
    # a config saved as UTF-16 (some Windows editors)
    Case("config_utf16", lambda tmp: (tmp / "c.yaml").write_bytes("name: x\n".encode("utf-16")) and
         ["--config", str(tmp / "c.yaml")], ("c.yaml", "not a UTF-8 text file", "looks like UTF-16")),
    # results written into the data (a folder dataset would read the run's plots as a class next time)
    Case("out_inside_folder_dataset", out_inside("folder", folder), ("imgs/results", "inside the root of datasets[0]")),
]


@pytest.fixture(autouse=True)
def no_cached_weights(monkeypatch, tmp_path_factory):
    """Empty torch hub and Hugging Face caches, whatever the developer has cached (child processes too)."""
    isolate_weight_caches(monkeypatch, tmp_path_factory.mktemp("weights"))


def listing(root: Path) -> set[str]:
    """Every path under ``root`` (links not followed), relative."""
    out = set()
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(here, name), root))
    return out


def argv_of(case: Case, tmp_path: Path) -> list[str]:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args = case.make(inputs)
    if "--out" not in args:
        args += ["--out", str(tmp_path / "run")]
    return ["run", *args, "--no-progress"]


def check_error(err: str, case: Case) -> None:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for text in case.expect:
        assert text in lines[0], (text, lines[0])
    for text in case.forbid:
        assert text not in lines[0], (text, lines[0])


def test_the_table_is_large_and_distinct():
    assert len(CASES) >= 45
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_before_anything_is_written(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default run folder would land here, and be seen
    argv = argv_of(case, tmp_path)
    before = listing(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    check_error(err, case)
    assert not (tmp_path / "run").exists()
    assert listing(tmp_path) == before


SUBPROCESS_CASES = [c for c in CASES if c.id in ("seed_negative", "out_parent_is_file", "storage_malformed",
                                                  "image_corrupt", "class_folder_links_to_parent",
                                                  "bn_inception_not_cached")
                    or c.id in ("yaml_duplicate_section", "image_decompression_bomb")]


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[c.id for c in SUBPROCESS_CASES])
def test_bad_input_in_a_real_process(case, tmp_path):
    argv = argv_of(case, tmp_path)
    before = listing(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "run_benchmark.py"), *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    check_error(proc.stderr, case)
    assert not (tmp_path / "run").exists()
    assert listing(tmp_path) == before


# --------------------------------------------------------------------------- issue #27: report inputs

def _replace_line(path: Path, lineno: int, edit: Callable[[str], str]) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = edit(lines[lineno - 1])
    path.write_text("\n".join(lines) + "\n")


def _keep_header_only(path: Path) -> None:
    path.write_text(path.read_text().splitlines()[0] + "\n")


def _set_cell(name: str, lineno: int, column: str, value: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        header = (run / name).read_text().splitlines()[0].split(",")
        _replace_line(run / name, lineno, lambda line: ",".join(value if c == column else v
                                                                for c, v in zip(header, line.split(","))))
    return damage


REPORT_CASES = [
    ("trials_malformed_row", lambda run: _replace_line(run / "trials.csv", 4, lambda line: line + ",1,2,3"),
     ("trials.csv", "line 4")),
    ("trials_word_in_value", _set_cell("trials.csv", 3, "value", "oops"), ("trials.csv", "'value'", "row 3", "oops")),
    ("curves_word_in_epoch", _set_cell("curves.csv", 5, "epoch", "three"), ("curves.csv", "'epoch'", "row 5")),
    ("cost_wrong_header", lambda run: _replace_line(run / "cost.csv", 1, lambda line: line.replace("unit", "units")),
     ("cost.csv", "wrong header", "'units'")),
    ("manifest_truncated", lambda run: (run / "manifest.json").write_text((run / "manifest.json").read_text()[:40]),
     ("manifest.json",)),
    ("results_word_in_value", _set_cell("results.csv", 6, "value", "n/a!"), ("results.csv", "'value'", "row 6")),
    ("results_header_only", lambda run: _keep_header_only(run / "results.csv"),
     ("results.csv", "holds no results yet")),
    ("config_duplicate_key", lambda run: (run / "config.resolved.yaml").write_text(
        "training: {batch_size: 32}\ndatasets: [{name: cub200}]\ntraining: {batch_size: 64}\n"),
     ("config.resolved.yaml", "'training'", "lines 1 and 3")),
]


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root`` with its modification time (ns) and bytes."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("damage, expect", [c[1:] for c in REPORT_CASES], ids=[c[0] for c in REPORT_CASES])
def test_report_refuses_a_damaged_run_folder_before_writing_anything(damage, expect, tmp_path, capsys):
    from tests.reporting.fixtures import write_run_folder

    run = write_run_folder(tmp_path / "run")
    (run / "tables").mkdir()
    (run / "tables" / "cub200.md").write_text("an earlier report's table\n")
    damage(run)
    before = snapshot(run)  # any file written, rewritten or touched would show
    assert main(["report", str(run)]) == 2
    check_error(capsys.readouterr().err, Case("report", lambda tmp: [], expect))
    assert snapshot(run) == before


def test_report_refusal_in_a_real_process(tmp_path):
    from tests.reporting.fixtures import write_run_folder

    run = write_run_folder(tmp_path / "run")
    REPORT_CASES[0][1](run)
    before = snapshot(run)
    proc = subprocess.run([sys.executable, str(REPO / "run_benchmark.py"), "report", str(run)], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    check_error(proc.stderr, Case("report", lambda tmp: [], REPORT_CASES[0][2]))
    assert snapshot(run) == before


@pytest.mark.parametrize("args, expect", [(["--format", ""], "--format is empty"),
                                          (["--format", " , "], "--format is empty")])
def test_report_flag_given_empty_is_refused(args, expect, tmp_path, capsys):
    from tests.reporting.fixtures import write_run_folder

    run = write_run_folder(tmp_path / "run")
    before = snapshot(run)
    assert main(["report", str(run), *args]) == 2
    check_error(capsys.readouterr().err, Case("report", lambda tmp: [], (expect,)))
    assert snapshot(run) == before


def test_report_of_an_empty_run_folder_name_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", ""]) == 2
    check_error(capsys.readouterr().err, Case("report", lambda tmp: [], ("the run folder is empty",)))


@pytest.mark.parametrize("override, message", [
    ("datasets[3].root=/data/CUB_200_2011", "config key 'datasets' has no entry [3] (entries: [0] builtin)"),
    ("datasets[name=cub200].root=/data/CUB_200_2011",
     "config key 'datasets' has no entry with name=cub200 (entries: [0] builtin)"),
    # the entry is reached: its own key's range check names it the same way
    ("datasets[name=builtin].options.num_classes=1", "config key 'datasets[0].options.num_classes'"),
    ("datasets[0].training.max_epochs=0", "config key 'datasets[0].training.max_epochs' must be >= 1"),
])
def test_set_addresses_list_entries_through_the_cli(override, message, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "run_benchmark.py"), "run", "--preset", "smoke",
                           "--set", override, "--out", str(tmp_path / "run"), "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    check_error(proc.stderr, Case("set_list_entry", smoke(), (message,)))
    assert listing(tmp_path) == set()
