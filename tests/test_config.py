"""Config loading: presets validate, unknown keys and bad values are rejected with their dotted path."""

from __future__ import annotations

import pytest

from benchmark.config import apply_overrides, preset_path
from benchmark.protocol.run_config import assemble_config, load_run_config
from benchmark.errors import BenchmarkError, ConfigError
from benchmark.methods import list_methods


@pytest.mark.parametrize("preset", ["smoke", "quick", "reality-check", "context-bias"])
def test_presets_load(preset):
    cfg = load_run_config(preset=preset)
    assert cfg.name == preset
    assert preset_path(preset).is_file()


def test_reality_check_has_the_published_budgets():
    cfg = load_run_config(preset="reality-check")
    p, t = cfg.protocol, cfg.training
    assert (p.n_folds, p.n_trials, p.n_repeats, p.fold_mode) == (4, 50, 10, "mlrc")
    assert (t.batch_size, t.m_per_class, t.iterations_per_epoch) == (32, 4, 100)
    assert (t.optimizer, t.lr_trunk, t.lr_embedder) == ("rmsprop", 1e-6, 1e-6)
    by_name = {d.name: cfg.training_for(d) for d in cfg.datasets}
    assert (by_name["cub200"].val_interval, by_name["cub200"].patience) == (2, 9)
    assert (by_name["cars196"].val_interval, by_name["cars196"].patience) == (5, 14)
    assert (by_name["sop"].val_interval, by_name["sop"].patience) == (20, 39)
    assert cfg.methods == [m.name for m in list_methods()]


def test_regimes_of_the_presets():
    assert load_run_config(preset="reality-check").training.regime == "end_to_end"  # the published protocol
    quick = load_run_config(preset="quick")
    assert quick.training.regime == "frozen" and quick.frozen.grid >= 2  # spatial detail kept
    p = quick.protocol
    assert (p.n_folds, quick.methods) == (4, [m.name for m in list_methods()])
    assert p.n_trials >= 10 and p.n_repeats >= 5


def test_overrides_and_types():
    data = apply_overrides({"methods": ["triplet"]}, ["training.max_epochs=3", "protocol.sampler=gp", "seed=7"])
    cfg = assemble_config(data)
    assert cfg.training.max_epochs == 3 and cfg.protocol.sampler == "gp" and cfg.seed == 7
    assert assemble_config({"training": {"lr_trunk": 1}}).training.lr_trunk == 1.0  # int accepted for float
    # YAML 1.1 reads "5e-4" (no dot) as a string; a float key still takes it
    assert assemble_config(apply_overrides({}, ["training.lr_trunk=5e-4"])).training.lr_trunk == 5e-4


def test_num_workers_is_auto_by_default_and_takes_numbers():
    assert assemble_config({}).training.num_workers == "auto"
    assert assemble_config(apply_overrides({}, ["training.num_workers=3"])).training.num_workers == 3
    cfg = assemble_config({"training": {"num_workers": 0},
                            "datasets": [{"name": "builtin", "training": {"num_workers": "auto"}}]})
    assert cfg.training.num_workers == 0 and cfg.training_for(cfg.datasets[0]).num_workers == "auto"


@pytest.mark.parametrize("data, message", [
    ({"trainng": {}}, "'trainng'"),
    ({"training": {"lr": 1}}, "'training.lr'"),
    ({"datasets": [{"name": "builtin", "optons": {}}]}, "'datasets[0].optons'"),
    ({"methods": ["nope"]}, "unknown method 'nope'"),
    ({"methods": ["triplet", "triplet"]}, "twice"),
    ({"protocol": {"n_trials": "x"}}, "'protocol.n_trials' expects int"),
    ({"protocol": {"sampler": "cmaes"}}, "protocol.sampler"),
    ({"protocol": {"n_folds": 1}}, "protocol.n_folds"),
    ({"training": {"batch_size": 30, "m_per_class": 4}}, "multiple of m_per_class"),
    ({"training": {"val_interval": 5, "patience": 4}}, "must be at least val_interval"),
    ({"model": {"trunk": "vit"}}, "model.trunk"),
    ({"device": "tpu"}, "device"),
    ({"training": {"regime": "frozn"}}, "training.regime"),
    ({"datasets": [{"name": "builtin", "training": {"regime": "x"}}]}, "datasets[0].training.regime"),
    ({"training": {"threads": -1}}, "training.threads"),
    ({"training": {"num_workers": "all"}}, "'training.num_workers' must be a number or auto"),
    ({"training": {"num_workers": 1.5}}, "'training.num_workers' expects int or str"),
    ({"datasets": [{"name": "builtin", "training": {"num_workers": "Auto"}}]}, "datasets[0].training.num_workers"),
    ({"frozen": {"cut": "middle"}}, "frozen.cut"),
    ({"frozen": {"grid": 0}}, "frozen.grid"),
    ({"frozen": {"views": 0}}, "frozen.views"),
    ({"frozen": {"view": 2}}, "'frozen.view'"),
])
def test_bad_configs_are_rejected(data, message):
    with pytest.raises(BenchmarkError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        assemble_config(data)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["training.max_epochs"])


def test_the_leaf_checks_types_and_ranges_and_the_assembler_checks_names():
    from benchmark.config import parse_config

    cfg = parse_config({"methods": ["nope"], "model": {"trunk": "vit"}, "protocol": {"sampler": "cmaes"}})
    assert (cfg.methods, cfg.model.trunk) == (["nope"], "vit")  # names belong to their layers
    with pytest.raises(ConfigError, match="'training.batch_size' must be >= 1"):
        parse_config({"training": {"batch_size": 0}})
    with pytest.raises(ConfigError, match=r"'datasets\[0\]\.training\.lr_trunk' must be a finite number >= 0"):
        parse_config({"datasets": [{"name": "builtin", "training": {"lr_trunk": -1.0}}]})
    with pytest.raises(BenchmarkError, match="unknown method 'nope'"):
        assemble_config({"methods": ["nope"]})


def test_config_is_frozen():
    import dataclasses

    cfg = assemble_config({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.batch_size = 64  # type: ignore[misc]
    assert cfg.training_for(cfg.datasets[0]) == cfg.training


@pytest.mark.parametrize("data, message", [
    ({"methods": ["dcml"], "training": {"regime": "frozen"}, "frozen": {"grid": 1}}, "spatial map"),
    ({"methods": ["contrastive"], "frozen": {"cut": "before_last"},
      "datasets": [{"name": "features", "root": "f.npz"}]}, "features file"),
])
def test_cross_section_checks(data, message):
    with pytest.raises(ConfigError, match=message):
        assemble_config(data)


@pytest.mark.parametrize("data", [
    {"methods": ["dcml"], "training": {"regime": "frozen"}, "frozen": {"grid": 2}},
    {"methods": ["dcml"], "training": {"regime": "frozen"}, "frozen": {"grid": 1, "cut": "before_last"}},
    {"methods": ["dcml"], "frozen": {"grid": 1}},  # end to end: the frozen keys do not apply
    {"methods": ["contrastive", "proxy_nca_pp"], "training": {"regime": "frozen"}, "frozen": {"grid": 1}},
])
def test_cross_section_checks_accept_what_works(data):
    assemble_config(data)


def test_the_published_protocol_never_prunes_and_the_other_presets_use_hyperband():
    published = load_run_config(preset="reality-check").protocol
    assert (published.pruner, published.n_trials, published.budget_iterations) == ("none", 50, None)
    for preset in ("quick", "context-bias"):
        assert load_run_config(preset=preset).protocol.pruner == "hyperband", preset
    assert assemble_config({}).protocol.pruner == "hyperband"
