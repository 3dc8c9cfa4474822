"""A dataset's fixed hyperparameters per method: checked when the config is read, used when a fold's method is built."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmark.protocol.run_config import assemble_config, load_run_config
from benchmark.errors import ConfigError
from benchmark.methods.dataset_params import check_method_params, params_for
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN
from benchmark.protocol import workbench
from benchmark.protocol.workbench import FoldData, Workbench


def _config(method_params: dict):
    return assemble_config({"methods": ["dcml"], "protocol": {"n_folds": 2},
                             "datasets": [{"name": "builtin", "method_params": method_params},
                                          {"name": "builtin", "label": "other"}]})


def test_params_for_overlays_the_trial_on_the_dataset_values():
    dataset = {"dcml": {"env_interval": 10}}
    assert params_for("dcml", dataset, {"alpha": 1e-5}) == {"env_interval": 10, "alpha": 1e-5}
    assert params_for("triplet", dataset, {"margin": 0.1}) == {"margin": 0.1}


@pytest.mark.parametrize("method_params, message", [
    ({"dcml": {"alpha": 1e-5}}, "'datasets[0].method_params.dcml.alpha' is searched"),
    ({"dcml": {"env_intervall": 10}}, "unknown config key 'datasets[0].method_params.dcml.env_intervall'"),
    ({"dcml": {"env_interval": "10"}}, "'datasets[0].method_params.dcml.env_interval' expects int"),
    ({"dcml": {"env_interval": 2.5}}, "'datasets[0].method_params.dcml.env_interval' expects int"),
    ({"dcml": {"env_interval": 0}}, "'datasets[0].method_params.dcml': DCML's env_interval must be an integer"),
    ({"dcm": {"env_interval": 10}}, "'datasets[0].method_params.dcm': unknown method 'dcm'"),
    ({"dcml": 10}, "'datasets[0].method_params.dcml' expects a mapping"),
])
def test_bad_method_params_name_the_key(method_params, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        _config(method_params)


def test_bad_method_params_type():
    with pytest.raises(ConfigError, match=r"'x\.method_params' expects a mapping"):
        check_method_params([1], "x.method_params")


def test_reality_check_preset_infers_dcml_environments_every_10_passes_on_sop_only():
    cfg = load_run_config(preset="reality-check")
    intervals = {d.key: params_for("dcml", d.method_params, {}).get("env_interval") for d in cfg.datasets}
    assert intervals == {"cub200": None, "cars196": None, "sop": 10, "inshop": None}  # None: the default, 5


def test_the_workbench_builds_each_datasets_method_with_its_values(monkeypatch):
    cfg = _config({"dcml": {"env_interval": 10}})
    bench = Workbench(cfg, progress=False)
    fake = SimpleNamespace(folds=[FoldData(train=None, train_eval=None, val=None, num_classes=3)],
                           models=SimpleNamespace(new=lambda seed: EmbeddingModel(SmallCNN(width=8), 16)), paired=None)
    monkeypatch.setattr(bench, "dataset", lambda dcfg: fake)
    built = []

    def fake_train_fold(*, model, method, **kwargs):
        built.append(method)
        from benchmark.training.trainer import COMPLETED, FoldResult

        return model, FoldResult(0.0, 0, COMPLETED, 0)  # the workbench sums the folds' iterations

    monkeypatch.setattr(workbench, "train_fold", fake_train_fold)
    bench.train_folds("dcml", {"alpha": 2e-5}, cfg.datasets[0], ("k",))
    bench.train_folds("dcml", {"alpha": 2e-5}, cfg.datasets[1], ("k",))
    assert [m.env_interval for m in built] == [10, 5]
    assert [m.alpha for m in built] == [2e-5, 2e-5]
