"""The frozen regime through the protocol: cached tensors in the folds, determinism, resume, features datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.protocol.run_config import load_run_config
from benchmark.data.tensor_sets import TensorSet, ViewSet
from benchmark.models.cached_trunk import CachedTrunk
from benchmark.protocol import workbench
from benchmark.protocol.workbench import Workbench
from tests.data.test_features import clustered

FROZEN = ["--set", "training.regime=frozen", "--set", "frozen.views=2", "--set", "training.threads=1"]


def frozen_config(*extra):
    return load_run_config(preset="smoke", overrides=["training.regime=frozen", "frozen.views=2", *extra])


@pytest.fixture(scope="module")
def bench():
    b = Workbench(frozen_config(), progress=False)
    b.load_all()
    return b


def test_folds_hold_cached_outputs_and_models_take_them(bench):
    dcfg = bench.cfg.datasets[0]
    data = bench.dataset(dcfg)
    fold = data.folds[0]
    assert isinstance(fold.train, ViewSet) and fold.train.num_views == 2
    assert isinstance(fold.val, TensorSet) and isinstance(data.source.test, TensorSet)
    assert fold.train.values.shape[2:] == (128, 4, 4)  # the small CNN's 4 x 4 map (grid 4 keeps it)
    assert set(fold.train.labels) == set(range(fold.num_classes))  # relabelled for proxy losses
    model = data.models.new(0)
    assert isinstance(model.trunk, CachedTrunk) and model.embedder.in_features == 2048
    assert model(fold.val.values[:3]).shape == (3, 128)


def test_frozen_training_is_deterministic_for_a_seed(bench):
    dcfg = bench.cfg.datasets[0]
    runs = [bench.train_folds("multi_similarity", {}, dcfg, ("test", "x")) for _ in range(2)]
    for (m1, r1), (m2, r2) in zip(*runs):
        assert r1.curve == r2.curve and r1.iterations == r2.iterations
        for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
            assert torch.equal(v1, v2), k
    other = bench.train_folds("multi_similarity", {}, dcfg, ("test", "y"))
    assert other[0][1].curve != runs[0][0][1].curve


def test_before_last_cut_trains_the_last_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("DML_BENCH_CACHE", str(tmp_path))
    b = Workbench(frozen_config("frozen.cut=before_last", "model.pretrained=false"), progress=False)
    dcfg = b.cfg.datasets[0]
    data = b.dataset(dcfg)
    assert data.folds[0].train.values.shape[2:] == (64, 4, 4)  # the input of the small CNN's last stage
    (model, result), *_ = b.train_folds("contrastive", {}, dcfg, ("t",))
    fresh = data.models.new(0)
    assert any(not torch.equal(a, b_) for a, b_ in zip(model.trunk.stage.parameters(), fresh.trunk.stage.parameters()))


def run(out, *extra):
    return main(["run", "--preset", "smoke", "--out", str(out), "--no-progress", *FROZEN, *extra])


@pytest.mark.slow
def test_interrupted_frozen_run_resumes_to_identical_results(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    assert run(reference, "--methods", "contrastive") == 0
    out = tmp_path / "run"
    original = workbench.Workbench.train_folds
    calls = {"n": 0}

    def interrupting(self, *args, **kwargs):
        calls["n"] += 1  # 1-2: the search trials, 3-4: the repeats
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(workbench.Workbench, "train_folds", interrupting)
    assert run(out, "--methods", "contrastive") == 130
    monkeypatch.setattr(workbench.Workbench, "train_folds", original)
    assert run(out, "--methods", "contrastive") == 0
    key = ["method", "repeat", "embedding", "metric"]
    got = pd.read_csv(out / "results.csv").sort_values(key).reset_index(drop=True)
    want = pd.read_csv(reference / "results.csv").sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def features_config(tmp_path, root) -> str:
    cfg = tmp_path / "features.yaml"
    cfg.write_text(f"name: feats\nmethods: [contrastive, proxy_nca_pp]\ndatasets:\n  - name: features\n"
                   f"    root: {root}\nmodel: {{embedding_dim: 8}}\n"
                   f"training: {{batch_size: 8, m_per_class: 2, iterations_per_epoch: 5, max_epochs: 2, "
                   f"val_interval: 1, optimizer: adam, lr_embedder: 0.01, threads: 1}}\n"
                   f"protocol: {{n_folds: 2, n_trials: 1, n_repeats: 2, pruner: none}}\n"
                   f"evaluation: {{recall_at: [1]}}\n")
    return str(cfg)


def test_features_dataset_runs_end_to_end_through_the_cli(tmp_path, capsys):
    x, y = clustered(n_classes=16, per_class=6, dim=12)
    root = tmp_path / "feats.npz"
    np.savez(root, features=x, labels=y)
    out = tmp_path / "run"
    assert main(["run", "--config", features_config(tmp_path, root), "--out", str(out), "--no-progress"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert set(results["method"]) == {"pretrained", "raw_trunk", "contrastive", "proxy_nca_pp"}
    assert set(results["dataset"]) == {"features"}
    concat = results[(results["embedding"] == "concatenated") & (results["metric"] == "map_at_r")]
    assert concat["value"].between(0, 1).all() and len(concat) == 1 + 1 + 2 * 2  # Pretrained, raw trunk, 2 x 2
    assert "| Contrastive" in (out / "tables" / "features.md").read_text()


@pytest.mark.parametrize("arrays, expected", [
    ({"features": np.full((96, 4), np.nan, np.float32), "labels": np.repeat(np.arange(16), 6)}, "NaN"),
    ({"features": np.zeros((96, 4), np.float32), "labels": np.repeat(np.arange(16), 6)[:-1]}, "one label per row"),
    ({"features": np.zeros((96, 4), np.float32), "labels": np.repeat(np.arange(12), 8)}, "a fold trains on only"),
])
def test_bad_features_are_one_line_errors_and_write_nothing(tmp_path, capsys, arrays, expected):
    root = tmp_path / "bad.npz"
    np.savez(root, **arrays)
    out = tmp_path / "run"
    code = main(["run", "--config", features_config(tmp_path, root), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and expected in err, err
    assert str(root) in err and "'labels'" in err or "'features'" in err
    assert not out.exists()
