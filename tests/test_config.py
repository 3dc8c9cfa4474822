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
    # methods: all = every registered method but the cross-modal ones (the datasets have one modality each)
    assert cfg.methods == [m.name for m in list_methods() if m.cross_modal != "native"]


def test_regimes_of_the_presets():
    assert load_run_config(preset="reality-check").training.regime == "end_to_end"  # the published protocol
    quick = load_run_config(preset="quick")
    assert quick.training.regime == "frozen" and quick.frozen.grid >= 2  # spatial detail kept
    p = quick.protocol
    assert (p.n_folds, quick.methods) == (4, [m.name for m in list_methods() if m.cross_modal != "native"])
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


def test_set_addresses_list_entries_by_index_and_by_name():
    data = {"datasets": ["cub200", {"name": "builtin", "label": "biased", "options": {"context_bias": 0.5}}]}
    apply_overrides(data, ["datasets[0].root=/data/CUB_200_2011", "datasets[name=biased].training.max_epochs=3",
                           "datasets[-1].options.num_classes=20", "evaluation.recall_at=[1, 2]",
                           "evaluation.recall_at[1]=4"])
    assert data["datasets"] == [
        {"name": "cub200", "root": "/data/CUB_200_2011"},  # a bare name became an entry, its name kept
        {"name": "builtin", "label": "biased", "options": {"context_bias": 0.5, "num_classes": 20},
         "training": {"max_epochs": 3}}]
    assert data["evaluation"]["recall_at"] == [1, 4]
    # a value may hold '=' and a dataset's name a dot; the first '=' outside brackets ends the key
    data = apply_overrides({"datasets": [{"name": "features", "label": "v1.2"}]},
                           ["datasets[name=v1.2].root=/d/a=b.npz"])
    assert data["datasets"][0]["root"] == "/d/a=b.npz"


def test_set_on_a_config_without_datasets_addresses_the_default_entry():
    cfg = assemble_config(apply_overrides({}, ["datasets[0].options.num_classes=20",
                                               "datasets[name=builtin].training.max_epochs=3"]))
    (d,) = cfg.datasets
    assert (d.name, d.options, cfg.training_for(d).max_epochs) == ("builtin", {"num_classes": 20}, 3)


@pytest.mark.parametrize("override, message", [
    ("datasets[2].root=/d", "config key 'datasets' has no entry [2] (entries: [0] cub200, [1] biased)"),
    ("datasets[-3].root=/d", "has no entry [-3] (entries: [0] cub200, [1] biased)"),
    ("datasets[name=cars196].root=/d", "no entry with name=cars196 (entries: [0] cub200, [1] biased)"),
    ("datasets[x].root=/d", "[x] must be an index (datasets[0]) or KEY=NAME"),
    ("datasets[0.root=/d", "KEY=VALUE"),
    ("training[0]=1", "config key 'training' is not a list"),
    ("training.max_epochs.x=1", "config key 'training.max_epochs' is not a section"),
    ("datasets[0][1]=1", "config key 'datasets[0]' is not a list"),
])
def test_set_refuses_an_entry_that_does_not_exist(override, message):
    data = {"datasets": ["cub200", {"name": "builtin", "label": "biased"}], "training": {"max_epochs": 2}}
    with pytest.raises(ConfigError) as exc:
        apply_overrides(data, [override])
    assert message in str(exc.value) and override in str(exc.value)
    assert "\n" not in str(exc.value)


def test_set_refuses_an_ambiguous_name():
    data = {"datasets": [{"name": "builtin", "label": "a"}, {"name": "builtin", "label": "b"}]}
    with pytest.raises(ConfigError, match=r"several entries with name=builtin \(\[0\], \[1\]\)"):
        apply_overrides(data, ["datasets[name=builtin].root=/d"])
    apply_overrides(data, ["datasets[label=b].options.context_bias=0.5"])
    assert data["datasets"][1]["options"] == {"context_bias": 0.5}


def test_the_features_preset_trains_like_the_quick_preset_and_lists_every_method_that_fits():
    cfg = load_run_config(preset="features", overrides=["datasets[0].root=/data/my_features.npz"])
    (d,) = cfg.datasets
    assert (d.name, d.root, d.key) == ("features", "/data/my_features.npz", "features")
    quick = load_run_config(preset="quick")
    assert cfg.training == quick.training  # the frozen regime's budget, not the paper's 1000 epochs of RMSprop
    assert (cfg.training.regime, cfg.training.optimizer, cfg.training.max_epochs) == ("frozen", "adam", 8)
    assert cfg.protocol == quick.protocol
    fits = [s.name for s in list_methods()
            if s.can_run_frozen and not s.needs_spatial_map and s.cross_modal != "native"]  # native: paired only
    assert cfg.methods == fits  # a method registered later that can run on vectors belongs here too


def test_the_features_preset_without_a_file_says_how_to_give_one():
    with pytest.raises(ConfigError, match=r"'datasets\[0\]\.root': dataset 'features' needs a location: .*"
                                          r"--set datasets\[0\]\.root=PATH"):
        load_run_config(preset="features")
