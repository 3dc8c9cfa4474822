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
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from benchmark.cli import main
from tests.data.fixtures import make_csv, make_cub, make_image_folder, make_sop, write_corrupt_image, write_image
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


def csv_absolute(tmp: Path) -> Path:
    return csv_with([f"{outside_image(tmp)},cat_1"])(tmp)


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
    Case("csv_absolute_path", dataset("csv", csv_absolute), ("elsewhere.jpg", "outside the dataset root")),
    Case("csv_dotdot_path", dataset("csv", csv_dotdot), ("elsewhere.jpg", "outside the dataset root")),
    Case("csv_two_classes", dataset("csv", csv_with(["images/0_0.jpg,cat_5"])), ("0_0.jpg", "two classes")),
    Case("csv_row_twice", dataset("csv", csv_with(["images/1_1.jpg,cat_1"])), ("1_1.jpg", "twice")),
    Case("csv_train_and_test", dataset("csv", csv_with(["images/0_0.jpg,cat_7,test"], split=True)),
         ("0_0.jpg", "train", "test")),
    Case("cub_corrupt_image", dataset("cub200", cub_corrupt), ("Bird_8_0002_24.jpg", "corrupt")),
    Case("sop_path_escapes", dataset("sop", sop_escaping), ("stray.JPG", "outside the dataset root")),
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
                                                  "bn_inception_not_cached")]


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
