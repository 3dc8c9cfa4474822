"""``run --save``, ``evaluate RUN`` and ``evaluate --config``, through the real command line.

A tiny run keeps its embeddings and models; its saved embeddings re-score to the run's own values (to 1e-6), a
metric asked for afterwards (NMI, R@4) lands in results.csv and the tables without training and survives the
run's next export; the raw-trunk row is the features file's own metrics.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.evaluation.clustering import clustering_metrics
from benchmark.evaluation.embed import concatenate
from benchmark.evaluation.metrics import compute_metrics

pytestmark = pytest.mark.slow

TINY = ["run", "--preset", "smoke", "--methods", "contrastive", "--trials", "1", "--repeats", "2",
        "--set", "model.pretrained=false", "--set", "training.iterations_per_epoch=4", "--no-progress"]


def value(results: pd.DataFrame, method: str, repeat: int, embedding: str, metric: str) -> float:
    row = results[(results.method == method) & (results.repeat == repeat) & (results.embedding == embedding)
                  & (results.metric == metric)]
    assert len(row) == 1, (method, repeat, embedding, metric, len(row))
    return float(row.value.iloc[0])


def one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), (code, err)
    return err


def test_saved_embeddings_rescore_to_the_run_and_add_new_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY, "--save", "both", "--out", str(out)]) == 0
    capsys.readouterr()
    art = out / "artifacts" / "builtin"
    for method, repeats in (("contrastive", 2), ("pretrained", 1), ("raw_trunk", 1)):
        for r in range(repeats):
            assert (art / method / f"repeat{r}" / "embeddings.npz").is_file()
    assert sorted(p.name for p in (art / "contrastive" / "repeat1").iterdir()) == \
        ["embeddings.npz", "fold0.safetensors", "fold1.safetensors"]
    assert not list((art / "pretrained").rglob("*.safetensors"))  # nothing trained: no weights kept
    assert not list(out.rglob(".*.tmp*"))  # atomic writes leave no temporary file

    results = pd.read_csv(out / "results.csv")
    with np.load(art / "contrastive" / "repeat1" / "embeddings.npz") as npz:
        folds, labels = [npz["fold0"], npz["fold1"]], npz["labels"]
        assert np.array_equal(npz["concatenated"], concatenate(folds))
        assert json.loads(str(npz["meta"]))["params"]  # the configuration that was retrained
        # independently of the re-scoring code: the run's value from the saved arrays
        expected = compute_metrics(npz["concatenated"], labels, recall_at=(1, 2))["map_at_r"]
    assert abs(value(results, "contrastive", 1, "concatenated", "map_at_r") - expected) <= 1e-6
    with np.load(art / "raw_trunk" / "repeat0" / "embeddings.npz") as npz:
        assert set(npz.files) == {"labels", "concatenated", "meta"}
        assert value(results, "raw_trunk", 0, "concatenated", "precision_at_1") == pytest.approx(
            compute_metrics(npz["concatenated"], npz["labels"])["precision_at_1"], abs=1e-9)

    from safetensors import safe_open
    with safe_open(str(art / "contrastive" / "repeat1" / "fold1.safetensors"), "pt") as f:
        meta = f.metadata()
        weight = f.get_tensor("embedder.weight")
    assert meta["method"] == "contrastive" and meta["fold"] == "1" and weight.shape[0] == 128
    assert float(meta["best_val_map_at_r"]) > 0

    # every value of the run, re-scored from the saved embeddings: the same, and results.csv untouched
    before = (out / "results.csv").read_bytes()
    assert main(["evaluate", str(out), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "re-scored the saved embeddings of 4 repeats" in err
    assert "(the same to 1e-06)" in err, err
    assert (out / "results.csv").read_bytes() == before

    # metrics the run did not compute, added without training
    assert main(["evaluate", str(out), "--metrics", "nmi,recall_at_4", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    results = pd.read_csv(out / "results.csv")
    nmi = results[results.metric == "nmi"]
    assert len(nmi) == 2 * 3 + 3 + 1  # contrastive: 2 repeats x (2 folds + concatenated); pretrained; raw trunk
    assert value(results, "contrastive", 1, "fold0", "nmi") == pytest.approx(
        clustering_metrics(folds[0], labels, seed=0)["nmi"], abs=1e-12)
    table = (out / "tables" / "builtin.md").read_text()
    assert "NMI" in table and "R@4" in table and "NMI" in printed
    assert json.loads((out / "manifest.json").read_text())["metrics"]["nmi"]["label"] == "NMI"

    # the run's next export (the same command again: nothing to train) keeps them
    assert main([*TINY, "--save", "both", "--out", str(out)]) == 0
    again = pd.read_csv(out / "results.csv")
    assert len(again[again.metric == "nmi"]) == len(nmi)
    assert "NMI" in (out / "tables" / "builtin.md").read_text()
    capsys.readouterr()

    # bad input: one line, exit status 2
    assert "unknown metric 'nope'" in one_line_error(capsys, ["evaluate", str(out), "--metrics", "nope"])
    bare = tmp_path / "bare"
    shutil.copytree(out, bare, ignore=shutil.ignore_patterns("artifacts"))
    assert "holds no saved embeddings" in one_line_error(capsys, ["evaluate", str(bare)])
    assert "not both" in one_line_error(capsys, ["evaluate", str(out), "--preset", "smoke"])


def test_evaluate_config_scores_a_features_file_as_given(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(30), 6)
    features = (rng.standard_normal((30, 16))[labels] + 0.9 * rng.standard_normal((len(labels), 16)))
    split = np.where(labels < 15, "train", "test")
    np.savez(tmp_path / "f.npz", features=features.astype(np.float32), labels=labels, split=split)
    out = tmp_path / "trunk"
    assert main(["evaluate", "--preset", "features", "--set", f"datasets[0].root={tmp_path / 'f.npz'}",
                 "--set", "evaluation.clustering=true", "--save", "embeddings", "--out", str(out),
                 "--no-plots", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| Raw trunk (16-d) |" in printed and "NMI" in printed
    results = pd.read_csv(out / "results.csv")
    assert set(results.method) == {"raw_trunk"} and set(results.embedding) == {"concatenated"}
    test = split == "test"
    expected = compute_metrics(features[test], labels[test], recall_at=(1, 2, 4, 8))
    for metric in ("precision_at_1", "map_at_r", "recall_at_8"):
        assert value(results, "raw_trunk", 0, "concatenated", metric) == pytest.approx(expected[metric], abs=1e-9)
    assert (out / "artifacts" / "features" / "raw_trunk" / "repeat0" / "embeddings.npz").is_file()
