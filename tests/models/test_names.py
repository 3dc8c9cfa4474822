"""Trunk names and the model.weights key: what config validation accepts, and the one-line errors."""

from __future__ import annotations

import pytest

from benchmark.protocol.run_config import load_run_config
from benchmark.errors import ConfigError
from benchmark.models.names import TRUNKS, check_trunk_name, check_weights_key


@pytest.mark.parametrize("name", [*TRUNKS, "timm:resnet18", "timm:resnet18.a1_in1k", "timm:test_vit"])
def test_accepted_names(name):
    check_trunk_name(name, "model.trunk")


@pytest.mark.parametrize("name, expect", [
    ("vit", "must be one of"),
    ("timm:", "'' is not a timm model"),
    ("timm:resnet18x", "did you mean resnet18"),
    ("timm:resnet18.nope", "no pretrained tag 'nope' (it has a1_in1k"),
    ("TIMM:resnet18", "must be one of"),
])
def test_refused_names(name, expect):
    with pytest.raises(ConfigError) as info:
        check_trunk_name(name, "datasets[0].model.trunk")
    message = str(info.value)
    assert "datasets[0].model.trunk" in message and expect in message and "\n" not in message


def test_config_validation_uses_the_names(tmp_path):
    assert load_run_config(preset="smoke", overrides=["model.trunk=timm:test_resnet"]).model.trunk == "timm:test_resnet"
    with pytest.raises(ConfigError, match="model.trunk.*not a timm model"):
        load_run_config(preset="smoke", overrides=["model.trunk=timm:nope_net"])
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    cfg = load_run_config(preset="smoke", overrides=["model.trunk=bn_inception", f"model.weights={weights}"])
    assert cfg.model.weights == str(weights)


def test_weights_key(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    check_weights_key("small_cnn", None, True, "model.weights")
    check_weights_key("bn_inception", str(weights), True, "model.weights")
    check_weights_key("timm:resnet18", str(weights), True, "model.weights")
    for trunk, path, pretrained, expect in [
        ("bn_inception", tmp_path / "absent.pth", True, "no file at"),
        ("bn_inception", tmp_path, True, "it is a folder"),
        ("small_cnn", weights, True, "read by the bn_inception and timm:<name> trunks only"),
        ("googlenet", weights, True, "only"),
        ("bn_inception", weights, False, "model.pretrained is false"),
    ]:
        with pytest.raises(ConfigError, match="'model.weights'") as info:
            check_weights_key(trunk, str(path), pretrained, "model.weights")
        assert expect in str(info.value)
