"""The method registry: names, validation of entries, and the text table of ``describe_methods``."""

from __future__ import annotations

import pytest

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


def _build(hp, ctx):  # pragma: no cover - never called
    return PMLMethod(None)


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
        register_method(name="contrastive", display_name="x", search_space={}, defaults={})(_build)
    try:
        register_method(name="_tmp_dup", display_name="tmp", search_space={}, defaults={})(_build)
        with pytest.raises(RegistryError, match="already registered"):
            register_method(name="_tmp_dup", display_name="tmp", search_space={}, defaults={})(_build)
    finally:
        unregister_method("_tmp_dup")
    assert get_method("contrastive").build.__module__.endswith("library.contrastive")


def test_unknown_method_raises_with_the_list():
    with pytest.raises(RegistryError, match=r"unknown method 'nope' \(known: .*contrastive.*triplet"):
        get_method("nope")


def test_invalid_entries_are_refused():
    with pytest.raises(RegistryError, match="loss_lr"):
        register_method(name="_tmp_a", display_name="a", search_space={}, defaults={},
                        has_parameters=True)(_build)
    with pytest.raises(RegistryError, match="no default"):
        register_method(name="_tmp_b", display_name="b", search_space={"m": Float(0, 1)}, defaults={})(_build)
    with pytest.raises(ConfigError, match="outside"):
        register_method(name="_tmp_c", display_name="c", search_space={"m": Float(0, 1)},
                        defaults={"m": 2.0})(_build)
    assert not {"_tmp_a", "_tmp_b", "_tmp_c"} & {spec.name for spec in list_methods()}


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
    assert get_method("proxy_nca_pp").extra["warmup_epochs"] == 1
    assert get_method("proxy_anchor").extra["warmup_epochs"] == 1
    assert get_method("contrastive").extra.get("warmup_epochs", 0) == 0


def test_describe_methods_mentions_every_method_and_parameter():
    text = describe_methods()
    for spec in list_methods():
        assert spec.name in text and spec.display_name in text
        for name, param in spec.search_space.items():
            assert f"{name} {param.describe()}" in text
    assert "[1e-05, 100] (log)" in text  # NT-Xent's temperature, as PROTOCOL.md has it
