"""The method registry: names, validation of entries, and the text table of ``describe_methods``."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning import losses

from benchmark.errors import ConfigError, RegistryError
from benchmark.methods import Float, PMLMethod, get_method, list_methods, register_method, unregister_method
from benchmark.methods.describe import describe_methods

#: The DCML tables' baselines (plus Lifted Structure): removing one must be a deliberate change.
EXPECTED = {
    "contrastive": "Contrastive", "triplet": "Triplet", "multi_similarity": "MS", "ntxent": "NT-Xent",
    "proxy_nca": "ProxyNCA", "margin": "Margin", "margin_per_class": "Margin/class",
    "normalized_softmax": "N. Softmax", "cosface": "COS", "arcface": "ArcFace", "fastap": "FastAP",
    "snr": "SNR", "ms_miner": "MS+Miner", "softtriple": "SoftTriple", "proxy_nca_pp": "ProxyNCA++",
    "contrastive_xbm": "ContXBM", "proxy_anchor": "Proxy-Anchor", "lifted_structure": "Lifted Structure",
}


def _build(hp, ctx):
    """A throw-away method."""
    return PMLMethod(losses.ContrastiveLoss(neg_margin=hp["m"]))


def _undocumented(hp, ctx):  # pragma: no cover - refused before it is called
    return PMLMethod(None)


#: A valid entry; each refusal case below changes one thing.
VALID = dict(display_name="tmp", source="Nobody, 2026", search_space={"m": Float(0, 1)}, defaults={"m": 0.5})


#: The seed papers' own methods (issue "The seed papers' own methods").
SEED_METHODS = {"dro_topk": "DRO-TopK", "dro_topk_pn": "DRO-TopK-PN", "dro_kl": "DRO-KL", "magnet": "Magnet",
                "dcml": "DCML", "nivmf": "EL-nivMF", "mahalanobis": "Mahalanobis"}


def test_every_baseline_is_registered_with_its_display_name():
    registered = {spec.name: spec.display_name for spec in list_methods()}
    for name, display in {**EXPECTED, **SEED_METHODS}.items():
        assert registered.get(name) == display, name
    displays = list(registered.values())
    assert len(set(displays)) == len(displays), "two methods print the same name in tables"


def test_duplicate_registration_raises():
    get_method("contrastive")  # load the library first
    with pytest.raises(RegistryError, match="already registered"):
        register_method(name="contrastive", **VALID)(_build)
    try:
        register_method(name="tmp_dup", **VALID)(_build)
        with pytest.raises(RegistryError, match="already registered"):
            register_method(name="tmp_dup", **VALID)(_build)
    finally:
        unregister_method("tmp_dup")
    assert get_method("contrastive").build.__module__.endswith("library.contrastive")


def test_unknown_method_raises_with_the_list():
    with pytest.raises(RegistryError, match=r"unknown method 'nope' \(known: .*contrastive.*triplet"):
        get_method("nope")


LOSS_LR = {"loss_lr": Float(1e-6, 1.0, log=True)}


@pytest.mark.parametrize("change, build, error, message", [
    ({}, _undocumented, RegistryError, "needs a docstring"),
    ({"source": " "}, _build, RegistryError, "source"),
    ({"display_name": ""}, _build, RegistryError, "display_name"),
    ({"search_space": {}, "defaults": {}}, _build, RegistryError, "search space is empty"),
    ({"defaults": {}}, _build, RegistryError, "no default"),
    ({"defaults": {"m": 2.0}}, _build, ConfigError, "outside"),
    ({"has_parameters": True}, _build, RegistryError, "loss_lr"),
    ({"has_parameters": True, "search_space": {"loss_lr": Float(1e-4, 1.0, log=True)},
      "defaults": {"loss_lr": 1e-3}}, _build, RegistryError, "loss_lr"),
    ({"search_space": LOSS_LR, "defaults": {"loss_lr": 1e-3}}, _build, RegistryError, "has no parameters"),
    ({"m_per_class": 0}, _build, RegistryError, "m_per_class"),
    ({"warmup_epochs": -1}, _build, RegistryError, "warmup_epochs"),
    ({"dataset_search_spaces": {"sop": {"x": Float(0, 2)}}}, _build, RegistryError, "unsearched"),
    ({"dataset_search_spaces": {"sop": {"m": Float(0.6, 2)}}}, _build, ConfigError, "on sop.*outside"),
    ({"dataset_search_spaces": {"sop": {"m": 0.1}}}, _build, RegistryError, "nothing to search"),
], ids=["no-docstring", "no-source", "no-display-name", "nothing-searched", "no-default", "default-outside",
        "params-without-loss-lr", "loss-lr-other-range", "loss-lr-without-params", "m-per-class-0", "warmup-negative",
        "dataset-overrides-unsearched", "dataset-range-excludes-default", "dataset-leaves-nothing"])
def test_registration_refuses_an_entry_that_breaks_the_contract(change, build, error, message):
    try:
        with pytest.raises(error, match=message):
            register_method(name="tmp_bad", **{**VALID, **change})(build)
        assert "tmp_bad" not in {spec.name for spec in list_methods()}
        register_method(name="tmp_bad", **VALID)(build if build is _build else _build)  # the valid entry passes
        assert get_method("tmp_bad").description == "A throw-away method."
    finally:
        unregister_method("tmp_bad")


@pytest.mark.parametrize("name", ["Bad", "has space", "a/b", "1st", ""])
def test_method_names_that_cannot_name_files_are_refused(name):
    with pytest.raises(RegistryError, match="lower-case"):
        register_method(name=name, **VALID)(_build)


@pytest.mark.parametrize("spec", list_methods(), ids=lambda s: s.name)
def test_entry_is_consistent(spec):
    assert spec.search_space, "every method has something to search"
    for name, param in spec.search_space.items():
        assert param.contains(spec.defaults[name]), f"{name}={spec.defaults[name]} not in {param.describe()}"
    assert spec.m_per_class == 4
    assert spec.source and spec.description
    assert spec.build.__module__.startswith("benchmark.methods.library.")
    if spec.has_parameters:
        assert spec.search_space["loss_lr"] == Float(1e-6, 1.0, log=True)
    else:
        assert "loss_lr" not in spec.search_space
    # unknown hyperparameters are refused, known ones overlay the defaults
    with pytest.raises(RegistryError, match="unknown hyperparameter"):
        spec.hyperparameters({"not_a_parameter": 1})
    first = next(iter(spec.search_space))
    assert spec.hyperparameters({first: spec.defaults[first]}) == dict(spec.defaults)


def test_warmup_is_declared_for_the_methods_that_use_it():
    assert get_method("proxy_nca_pp").warmup_epochs == 1
    assert get_method("proxy_anchor").warmup_epochs == 1
    assert get_method("contrastive").warmup_epochs == 0


def test_describe_methods_mentions_every_method_and_parameter():
    text = describe_methods()
    for spec in list_methods():
        assert spec.name in text and spec.display_name in text
        for name, param in spec.search_space.items():
            assert f"{name} {param.describe()}" in text
    assert "[1e-05, 100] (log)" in text  # NT-Xent's temperature, as docs/explanation/protocol.md has it


def _reads_margin(hp, ctx):
    """A throw-away method that reads ``margin`` only."""
    return PMLMethod(losses.TripletMarginLoss(margin=hp["margin"]))


def _reads_all(hp, ctx):
    """A throw-away method that hands every hyperparameter on (``**hp``)."""
    return PMLMethod(losses.TripletMarginLoss(**hp))


def _reads_only_when_enabled(hp, ctx):
    """A throw-away method that reads ``margin`` only when ``use_margin`` is set (not at the defaults)."""
    return PMLMethod(losses.TripletMarginLoss(margin=hp["margin"]) if hp["use_margin"] else losses.NTXentLoss())


def _reads_undeclared(hp, ctx):
    """A throw-away method that reads a key that has no default."""
    return PMLMethod(losses.TripletMarginLoss(margin=hp["margin"], swap=hp["swap"]))


@pytest.mark.parametrize("defaults, search_space, message", [
    ({"margin": 0.1, "margn": 1}, {"margin": Float(0, 1)},
     "method 'tmp_unread' (tests.methods.test_registry): hyperparameter 'margn' has a default but the build "
     "function _reads_margin() never reads it"),
    ({"margin": 0.1, "margn": 0.5}, {"margin": Float(0, 1), "margn": Float(0, 1)},
     "hyperparameter 'margn' has a default but the build function _reads_margin() never reads it"),
])
def test_registration_refuses_a_default_the_build_function_never_reads(defaults, search_space, message):
    try:
        with pytest.raises(RegistryError) as exc:
            register_method(name="tmp_unread", display_name="tmp", source="Nobody, 2026", search_space=search_space,
                            defaults=defaults)(_reads_margin)
        assert message in str(exc.value) and "\n" not in str(exc.value)
        assert "tmp_unread" not in {spec.name for spec in list_methods()}
    finally:
        unregister_method("tmp_unread")


def test_registration_refuses_a_key_read_without_a_default():
    try:
        with pytest.raises(RegistryError, match="reads hyperparameter 'swap', which has no default"):
            register_method(name="tmp_unread", display_name="tmp", source="Nobody, 2026",
                            search_space={"margin": Float(0, 1)}, defaults={"margin": 0.1})(_reads_undeclared)
    finally:
        unregister_method("tmp_unread")


@pytest.mark.parametrize("build, defaults", [
    (_reads_all, {"margin": 0.1, "swap": True}),  # **hp reads every key
    (_reads_only_when_enabled, {"margin": 0.1, "use_margin": False}),  # read in the source, not at the defaults
])
def test_registration_accepts_every_key_the_build_function_reads(build, defaults):
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    try:
        register_method(name="tmp_read", display_name="tmp", source="Nobody, 2026",
                        search_space={"margin": Float(0, 1)}, defaults=defaults)(build)
        assert dict(get_method("tmp_read").defaults) == defaults
        assert torch.equal(torch.rand(3), expected)  # the build at registration left the random state as it was
    finally:
        unregister_method("tmp_read")



def _reads_m_and_k(hp, ctx):
    """A throw-away method that reads ``m`` and ``k``."""
    return PMLMethod(losses.ContrastiveLoss(neg_margin=hp["m"], pos_margin=hp["k"] - hp["k"]))


def test_a_dataset_search_space_replaces_ranges_and_fixes_values_on_that_dataset_only():
    try:
        register_method(name="tmp_ds", **{**VALID, "search_space": {"m": Float(0, 1), "k": Float(0, 1)},
                                          "defaults": {"m": 0.5, "k": 0.5},
                                          "dataset_search_spaces": {"sop": {"m": Float(0, 3), "k": 0.25}}})(
            _reads_m_and_k)
        spec = get_method("tmp_ds")
        assert spec.search_space_for("sop") == {"m": Float(0, 3)} and spec.fixed_for("sop") == {"k": 0.25}
        assert spec.search_space_for("cub200") == {"m": Float(0, 1), "k": Float(0, 1)} and not spec.fixed_for("cub200")
    finally:
        unregister_method("tmp_ds")


def test_list_methods_shows_the_sop_ranges():
    text = describe_methods()
    assert "on sop: scale [0.01, 300]" in text and "on sop: beta [0.01, 200]" in text
    assert "on sop: la [0.01, 200]" in text and "on sop: weight_reg_weight=0 (fixed)" in text
