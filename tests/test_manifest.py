"""The run manifest: built from a run's settings, written and read back, and refused when missing or malformed."""

from __future__ import annotations

import json

import pytest

from benchmark.protocol.run_config import load_run_config
from benchmark.errors import BenchmarkError
from benchmark.manifest import MANIFEST_NAME, RunManifest, manifest_for, read_manifest, write_manifest
from benchmark.protocol.export import run_manifest


def test_dimensions_per_embedding():
    m = manifest_for(folds=2, repeats=5, embedding_dim=128, recall_at=[[1, 2], [1, 10]], far=1e-3)
    assert dict(m.dims) == {"fold0": 128, "fold1": 128, "concatenated": 256}
    assert m.fold_dim() == 128 and m.dim("concatenated") == 256
    assert {"recall_at_1", "recall_at_2", "recall_at_10"} <= set(m.metrics)  # every dataset's K


def test_run_manifest_of_the_smoke_preset():
    cfg = load_run_config(preset="smoke")  # 2 folds of 128, 2 repeats, Recall@1 and @2, FAR 1e-3
    m = run_manifest(cfg)
    assert (m.folds, m.repeats) == (2, 2)
    assert m.dim("concatenated") == 256
    assert m.metric("tar_at_far_1e-03").label == "TAR@FAR=1e-3"
    assert not m.metric("far_at_threshold").higher_is_better


def test_write_and_read_back(tmp_path):
    m = manifest_for(folds=3, repeats=2, embedding_dim=64, recall_at=[[1]], far=None)
    path = write_manifest(tmp_path, m)
    assert path == tmp_path / MANIFEST_NAME
    data = json.loads(path.read_text())
    assert data["embeddings"]["concatenated"] == 192
    assert data["metrics"]["diverged_folds"] == {"label": "Diverged folds", "unit": "count", "better": "lower"}
    back = read_manifest(tmp_path)
    assert (back.folds, back.repeats, dict(back.dims), dict(back.metrics)) == \
        (m.folds, m.repeats, dict(m.dims), dict(m.metrics))
    assert back.source == str(path)
    assert data["pooling"] == back.pooling == "repeats"


def test_the_pooling_is_recorded_and_an_older_manifest_without_it_reads_as_repeats(tmp_path):
    cfg = load_run_config(preset="reality-check")
    assert run_manifest(cfg).pooling == "with_best_trial"
    write_manifest(tmp_path, run_manifest(cfg))
    assert read_manifest(tmp_path).pooling == "with_best_trial"
    data = json.loads((tmp_path / MANIFEST_NAME).read_text())
    del data["pooling"]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    assert read_manifest(tmp_path).pooling == "repeats"


def test_missing_manifest_is_one_line_naming_the_file(tmp_path):
    with pytest.raises(BenchmarkError, match="manifest.json does not exist") as info:
        read_manifest(tmp_path)
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("{not json", "cannot read run manifest"),
    ('{"format": 9}', "not a run manifest of format 1"),
    ('{"format": 1, "folds": 0, "repeats": 1}', "'folds' must be a positive integer"),
    ('{"format": 1, "folds": 2, "repeats": 1, "embeddings": {"fold0": "128"}}', "'embeddings'"),
    ('{"format": 1, "folds": 2, "repeats": 1, "pooling": "best"}', "'pooling' must be one of repeats, "),
    ('{"format": 1, "folds": 2, "repeats": 1, "embeddings": {"fold0": 128}, '
     '"metrics": {"map_at_r": {"label": "MAP@R", "unit": "fraction", "better": "up"}}}', "metric 'map_at_r'"),
    ('{"format": 1, "folds": 2, "repeats": 1, "embeddings": {"fold0": 128}, '
     '"metrics": {"map_at_r": {"label": "MAP@R", "unit": "percent", "better": "higher"}}}', "unit"),
])
def test_malformed_manifest_names_the_file_and_key(tmp_path, text, message):
    (tmp_path / MANIFEST_NAME).write_text(text)
    with pytest.raises(BenchmarkError, match=message) as info:
        read_manifest(tmp_path)
    assert MANIFEST_NAME in str(info.value)


def test_unknown_metric_or_embedding_is_an_error():
    m = RunManifest(folds=1, repeats=1, dims={"fold0": 8, "concatenated": 8}, metrics={})
    with pytest.raises(BenchmarkError, match="does not describe metric 'map_at_r'"):
        m.metric("map_at_r")
    with pytest.raises(BenchmarkError, match="no dimension for embedding 'fold1'"):
        m.dim("fold1")


def test_per_category_metric_is_described_as_its_metric():
    manifest = manifest_for(folds=2, repeats=1, embedding_dim=8, recall_at=[[1]], far=None)
    info = manifest.metric("map_at_r@coffee maker")
    assert (info.label, info.unit, info.higher_is_better) == ("MAP@R [coffee maker]", "fraction", True)
    assert manifest.metric("precision_at_1@bags").label == "P@1 [bags]"
    with pytest.raises(BenchmarkError, match="does not describe metric 'r_precision@bags'"):
        manifest.metric("r_precision@bags")  # per category: P@1 and MAP@R only
    with pytest.raises(BenchmarkError, match="does not describe metric 'nmi@bags'"):
        manifest.metric("nmi@bags")
