"""Saved test embeddings and fold models: what is written for each ``protocol.save`` and what is read back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from benchmark.errors import BenchmarkError
from benchmark.evaluation.embed import TestEmbeddings, concatenate, score_embeddings
from benchmark.protocol.artifacts import ArtifactStore, read_embeddings, repeat_dir


def query_gallery_embeddings(seed: int = 0) -> TestEmbeddings:
    rng = np.random.default_rng(seed)
    ql, gl = np.repeat(np.arange(6), 3), np.repeat(np.arange(6), 4)
    folds = {f"fold{i}": rng.standard_normal((len(ql), 5)).astype(np.float32) for i in range(2)}
    gallery = {f"fold{i}": rng.standard_normal((len(gl), 5)).astype(np.float32) for i in range(2)}
    folds["concatenated"] = concatenate([folds["fold0"], folds["fold1"]])
    gallery["concatenated"] = concatenate([gallery["fold0"], gallery["fold1"]])
    return TestEmbeddings(query_labels=ql, query=folds, gallery_labels=gl, gallery=gallery,
                          thresholds={"fold0": 0.25, "fold1": -0.5})


def test_query_gallery_embeddings_round_trip_and_score_the_same(tmp_path):
    emb = query_gallery_embeddings()
    store = ArtifactStore(tmp_path, "embeddings")
    written = store.save(dataset="inshop", method="triplet", repeat=3, emb=emb, meta={"params": {"margin": 0.1}},
                         models=[torch.nn.Linear(2, 2)])
    folder = repeat_dir(tmp_path, "inshop", "triplet", 3)
    assert written == [folder / "embeddings.npz"]  # save: embeddings keeps no model
    back, meta = read_embeddings(folder / "embeddings.npz")
    assert meta == {"dataset": "inshop", "method": "triplet", "repeat": 3, "params": {"margin": 0.1}}
    assert list(back.query) == ["fold0", "fold1", "concatenated"] and back.thresholds == emb.thresholds
    for name in emb.query:
        assert np.array_equal(back.query[name], emb.query[name])
        assert np.array_equal(back.gallery[name], emb.gallery[name])
    kwargs = dict(recall_at=(1, 2), far=1e-1, seed=0, clustering=True)
    assert score_embeddings(back, **kwargs) == score_embeddings(emb, **kwargs)


def test_models_are_state_dicts_with_metadata(tmp_path):
    emb = query_gallery_embeddings()
    models = [torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)]
    written = ArtifactStore(tmp_path, "models").save(dataset="cub200", method="ms", repeat=0, emb=emb,
                                                     models=models, fold_meta=[{"best": 0.5}, {"best": 0.6}])
    assert [p.name for p in written] == ["fold0.safetensors", "fold1.safetensors"]
    state = load_file(str(written[1]))
    assert torch.equal(state["weight"], models[1].weight.detach())
    from safetensors import safe_open
    with safe_open(str(written[1]), "pt") as f:
        assert f.metadata()["best"] == "0.6" and f.metadata()["fold"] == "1"


def test_bad_files_and_modes_are_one_line_errors(tmp_path):
    with pytest.raises(BenchmarkError, match="--save must be one of"):
        ArtifactStore(tmp_path, "weights")
    with pytest.raises(BenchmarkError, match="does not exist"):
        read_embeddings(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(BenchmarkError, match="cannot read"):
        read_embeddings(tmp_path / "bad.npz")
    np.savez(tmp_path / "nolabels.npz", fold0=np.zeros((2, 2)))
    with pytest.raises(BenchmarkError, match="no array 'labels'"):
        read_embeddings(tmp_path / "nolabels.npz")
