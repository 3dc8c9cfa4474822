"""``configs/reality-check.yaml`` runs the published protocol item for item (README, "The published protocol,
item for item"); each test fails if the preset drifts from the published value, and checks that the
default elsewhere stays today's behaviour where the README says so."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from scipy.stats import qmc

from benchmark.data.splits import make_splits
from benchmark.methods import MethodContext, get_method
from benchmark.methods.dataset_params import params_for
from benchmark.methods.search_space import Float
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN
from benchmark.protocol.diverged_trial import trial_value
from benchmark.protocol.run_config import assemble_config, load_run_config
from benchmark.protocol.units import make_sampler, startup_trials
from benchmark.training import trainer
from benchmark.training.optim import make_optimizer
from benchmark.training.precision import resolve_precision
from tests.training.test_trainer import ConstantLoss, tiny_set

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def preset():
    return load_run_config(preset="reality-check")


@pytest.fixture(scope="module")
def default():
    return assemble_config({})


# -- 1. trunk ------------------------------------------------------------------------------------

def test_item1_the_preset_trains_the_published_bn_inception(preset, default):
    assert (preset.model.trunk, preset.model.pretrained, preset.model.freeze_bn) == ("bn_inception", True, True)
    assert default.model.trunk == "small_cnn"


def test_item1_without_the_weights_file_the_run_stops_with_one_line_naming_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "run"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DML_BENCH_CACHE": str(empty),
           "TORCH_HOME": str(empty)}
    proc = subprocess.run([sys.executable, str(ROOT / "run_benchmark.py"), "run", "--config",
                           str(ROOT / "configs" / "reality-check.yaml"), "--out", str(out), "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "bn_inception" in lines[0] and str(empty / "hub" / "checkpoints") in lines[0], lines[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert not list(empty.iterdir())  # nothing written


# -- 2. fp32 -------------------------------------------------------------------------------------

def test_item2_the_preset_trains_in_fp32_on_a_gpu(preset, default):
    for d in preset.datasets:
        tcfg = preset.training_for(d)
        assert tcfg.amp == "fp32", d.name
        assert resolve_precision(tcfg, torch.device("cuda")).dtype is None  # no autocast on a GPU either
    assert default.training.amp == "auto"


# -- 3. Sobol start, then GP + EI --------------------------------------------------------------------

def test_item3_the_preset_searches_with_a_sobol_start_of_max_5_params_then_gp(preset, default):
    assert (preset.protocol.sampler, preset.protocol.n_startup_trials) == ("sobol_gp", "auto")
    assert startup_trials("auto", 3) == 5 and startup_trials("auto", 7) == 7 and startup_trials(4, 7) == 4
    assert (default.protocol.sampler, default.protocol.n_startup_trials) == ("tpe", 10)


def _search(seed_of_slot, n_slots, space, n_startup, sequence_seed=11):
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({k: (p.low + p.high) / 2 for k, p in space.items()})  # slot 0: the defaults
    for slot in range(n_slots):
        study.sampler = make_sampler("sobol_gp", seed_of_slot(slot), n_startup, sequence_seed)
        trial = study.ask()
        values = {k: trial.suggest_float(k, p.low, p.high) for k, p in space.items()}
        study.tell(trial, -sum((v - 0.3) ** 2 for v in values.values()))
    return study, [t.params for t in study.trials]


def test_item3_startup_slots_take_one_scrambled_sobol_sequence_then_the_gp_and_are_deterministic():
    space = {"a": Float(0.0, 1.0), "b": Float(0.0, 1.0)}
    n_startup = startup_trials("auto", len(space))
    study, params = _search(lambda slot: 1000 + slot, n_startup + 3, space, n_startup)
    sobol = qmc.Sobol(2, scramble=True, seed=11).random(8)[:n_startup]
    got = np.array([[p["a"], p["b"]] for p in params[1:n_startup + 1]])
    np.testing.assert_allclose(got, sobol, atol=1e-12)  # slots 1..5: Sobol points 0..4 of one sequence
    sampler = make_sampler("sobol_gp", 0, n_startup, 11)
    assert isinstance(sampler.phase(study), optuna.samplers.GPSampler)  # after the start: GP + EI
    _, again = _search(lambda slot: 1000 + slot, n_startup + 3, space, n_startup)
    assert again == params  # the same seeds give the same search, the GP slots included


# -- 4. early stopping -----------------------------------------------------------------------------

def _stop(tcfg, monkeypatch):
    """Train a tiny fold with the preset's val_interval / patience / rule; the curve gains at its first two
    validations, then never again. Returns (best epoch, validations after it, epochs trained)."""
    tcfg = dataclasses.replace(tcfg, batch_size=8, m_per_class=2, iterations_per_epoch=1, max_epochs=1000,
                               optimizer="adam", num_workers=0, amp="fp32", memory_format="contiguous")
    scores = iter([0.1, 0.2] + [0.2] * 1000)
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: next(scores))
    data = tiny_set()
    _, result = trainer.train_fold(model=EmbeddingModel(SmallCNN(width=4), 8), method=ConstantLoss([1.0]),
                                   train_set=data, train_eval_set=data, val_set=data, cfg=tcfg,
                                   device=torch.device("cpu"), seed=0, m_per_class=2, progress=False)
    assert result.status == trainer.EARLY_STOPPED
    return result.best_epoch, len(result.curve) - 2, result.iterations


@pytest.mark.parametrize("name, best, published, harness", [
    # (dataset, best epoch = 2nd validation, published: (validations without gain, last epoch), harness: ...)
    ("cub200", 4, (5, 14), (4, 13)),
    ("cars196", 10, (3, 25), (2, 24)),
    ("sop", 40, (2, 80), (1, 79)),
])
def test_item4_early_stopping_epochs_of_a_scripted_curve_equal_the_published_rule(preset, monkeypatch, name, best,
                                                                                 published, harness):
    (d,) = [d for d in preset.datasets if d.name == name]
    tcfg = preset.training_for(d)
    assert tcfg.early_stopping == "published"
    assert _stop(tcfg, monkeypatch) == (best, *published)
    assert _stop(dataclasses.replace(tcfg, early_stopping="harness"), monkeypatch) == (best, *harness)


def test_item4_the_default_elsewhere_is_the_harness_rule(default):
    assert default.training.early_stopping == "harness"


# -- 5. per-dataset search ranges ---------------------------------------------------------------------

def test_item5_the_preset_searches_the_published_sop_ranges(preset):
    (sop,) = [d for d in preset.datasets if d.name == "sop"]
    assert {"arcface", "ms_miner", "softtriple"} <= set(preset.methods)
    assert get_method("arcface").search_space_for(sop.name)["scale"] == Float(0.01, 300.0)
    assert get_method("ms_miner").search_space_for(sop.name)["beta"] == Float(0.01, 200.0)
    softtriple = get_method("softtriple").search_space_for(sop.name)
    assert softtriple["la"] == Float(0.01, 200.0) and "weight_reg_weight" not in softtriple
    assert params_for("softtriple", sop.method_params, {}, sop.name)["weight_reg_weight"] == 0.0
    # CUB and Cars keep the published CUB/Cars ranges
    for name in ("cub200", "cars196"):
        assert get_method("arcface").search_space_for(name)["scale"] == Float(0.01, 200.0)
        assert get_method("ms_miner").search_space_for(name)["beta"] == Float(0.01, 100.0)
        assert get_method("softtriple").search_space_for(name)["weight_reg_weight"] == Float(0.0, 1.0)


# -- 6. diverging trial ------------------------------------------------------------------------------

def test_item6_a_diverging_trial_scores_zero_in_the_preset(preset, default):
    assert (preset.protocol.diverged_trial, default.protocol.diverged_trial) == ("zero", "best")
    statuses = ["completed", trainer.DIVERGED, "early_stopped", "completed"]
    assert trial_value(0.4, statuses, preset.protocol.diverged_trial) == 0.0
    assert trial_value(0.4, statuses, default.protocol.diverged_trial) == 0.4
    assert trial_value(0.4, ["completed"] * 4, preset.protocol.diverged_trial) == 0.4


# -- 7. weight decay of the loss's parameters ------------------------------------------------------------

def test_item7_the_loss_optimizer_of_a_method_with_parameters_gets_the_published_weight_decay(preset, default):
    method = get_method("arcface").create(MethodContext(num_classes=5, embedding_dim=8))
    model = EmbeddingModel(SmallCNN(width=4), 8)
    for cfg, loss_decay in ((preset, 1e-4), (default, 0.0)):
        groups = {g["name"]: g for g in make_optimizer(model, method, cfg.training).param_groups}
        assert groups["loss"]["weight_decay"] == loss_decay
        assert groups["embedder"]["weight_decay"] == cfg.training.weight_decay == 1e-4


# -- 8. folds -----------------------------------------------------------------------------------------

def test_item8_folds_on_196_classes_are_the_published_split_managers_blocks(preset, default):
    labels = np.repeat(np.arange(1, 197), 2)
    train = labels <= 98
    splits = make_splits(labels[train], labels[~train], n_folds=preset.protocol.n_folds,
                         mode=preset.protocol.fold_mode)
    blocks = [f.val_classes.tolist() for f in splits.folds]
    assert blocks == [list(range(75, 99)), list(range(1, 25)), list(range(26, 50)), list(range(50, 74))]
    assert sorted(set(range(1, 99)) - set(sum(blocks, []))) == [25, 74]  # never validated, as published
    cub = np.repeat(np.arange(1, 201), 2)
    cub_blocks = [f.val_classes.tolist() for f in make_splits(cub[cub <= 100], cub[cub > 100], n_folds=4,
                                                              mode=preset.protocol.fold_mode).folds]
    assert cub_blocks == [list(range(76, 101)), list(range(1, 26)), list(range(26, 51)), list(range(51, 76))]
    assert default.protocol.fold_mode == "contiguous"


# -- 9. pooling of repeats -------------------------------------------------------------------------

def test_item9_the_preset_pools_the_best_trial_with_its_repeats(preset, default):
    assert (preset.protocol.pooling, preset.protocol.n_repeats) == ("with_best_trial", 10)  # n = 11, as published
    assert default.protocol.pooling == "repeats"


@pytest.mark.slow
def test_item9_the_pooled_best_trial_is_its_own_models_tested(tmp_path):
    """A smoke run under the published pooling: each method's row pools the best search trial (repeat -1)
    with its retrainings; the trial's rows are what its own fold models (retrained here from its seeds,
    which on a CPU gives the same weights) score on the test set; manifest and tables say which pooling."""
    from benchmark.cli import main
    from benchmark.config import parse_config, read_config_file
    from benchmark.protocol.units import study_name
    from benchmark.protocol.workbench import Workbench

    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--out", str(out), "--no-progress", "--methods", "contrastive",
                 "--set", "protocol.pooling=with_best_trial", "--set", "evaluation.verification_far=null"]) == 0
    results = pd.read_csv(out / "results.csv")
    mine = results[results["method"] == "contrastive"]
    assert sorted(set(mine["repeat"])) == [-1, 0, 1]
    assert json.loads((out / "manifest.json").read_text())["pooling"] == "with_best_trial"
    md = (out / "tables" / "builtin.md").read_text(encoding="utf-8")
    assert "best search trial and its retrainings" in md
    row = next(line for line in md.splitlines() if line.startswith("| Contrastive"))
    assert row.rstrip(" |").endswith("3")  # n = 2 repeats + the best trial

    trials = pd.read_csv(out / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    best = done.sort_values(["value", "slot"], ascending=[False, True]).iloc[0]
    cfg = parse_config(read_config_file(out / "config.resolved.yaml"))
    bench = Workbench(cfg, progress=False)
    dcfg = cfg.datasets[0]
    trained = bench.train_folds("contrastive", json.loads(best["params"]), dcfg,
                                ("search", study_name(dcfg.key, "contrastive", "search"), int(best["slot"])))
    assert sum(r.best_value for _, r in trained) / len(trained) == pytest.approx(best["value"], abs=1e-9)
    test = bench.evaluate([m for m, _ in trained], dcfg)
    pooled = mine[mine["repeat"] == -1]
    assert len(pooled) == sum(len(v) - ("num_queries" in v) for v in test.values())
    for r in pooled.itertuples():
        assert r.value == pytest.approx(test[r.embedding][r.metric], abs=1e-6), (r.embedding, r.metric)
