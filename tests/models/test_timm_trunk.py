"""timm trunks on timm's small test models with random weights: shapes, input scale, cached weights, errors."""

from __future__ import annotations

import pytest
import timm
import torch

from benchmark.errors import ConfigError
from benchmark.models.cached_trunk import frozen_encoder
from benchmark.models.trunks import build_trunk, check_pretrained_weights
from tests.models.weight_caches import isolate_weight_caches, write_hf_cached_file

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
#: A CNN whose pretrained config normalises with mean = std = 0.5 (not ImageNet's), and a vision transformer.
CNN, VIT = "test_resnet", "test_vit"
CNN_REPO = "timm/test_resnet.r160_in1k"


@pytest.fixture
def caches(tmp_path, monkeypatch):
    return isolate_weight_caches(monkeypatch, tmp_path)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def random_state(name: str, seed: int) -> dict:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False).state_dict()


def test_cnn_trunk_is_timms_own_features_on_its_own_input_scale():
    trunk = build_trunk(f"timm:{CNN}", pretrained=False).eval()
    reference = timm.create_model(CNN, pretrained=False, num_classes=0).eval()
    reference.load_state_dict(trunk.model.state_dict())
    assert trunk.spatial and trunk.out_dim == trunk.channels == reference.num_features
    rgb = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        fmap = trunk.feature_map((rgb - MEAN) / STD)  # what the harness's transforms give
        assert fmap.dim() == 4 and fmap.shape[:2] == (2, reference.num_features)
        expected = reference((rgb - 0.5) / 0.5)  # what the weights were trained on
        assert rel(trunk.pool(fmap), expected) < 1e-5
        assert rel(reference((rgb - MEAN) / STD), expected) > 0.01  # unconverted, it would differ


def test_transformer_trunk_gives_its_pooled_features_as_a_one_by_one_map():
    trunk = build_trunk(f"timm:{VIT}", pretrained=False).eval()
    reference = timm.create_model(VIT, pretrained=False, num_classes=0).eval()
    reference.load_state_dict(trunk.model.state_dict())
    rgb = torch.rand(2, 3, 160, 160)
    with torch.no_grad():
        fmap = trunk.feature_map((rgb - MEAN) / STD)
        assert not trunk.spatial and fmap.shape == (2, reference.num_features, 1, 1)
        assert rel(trunk.pool(fmap), reference((rgb - 0.5) / 0.5)) < 1e-5
        # its config fixes 160 x 160; built with dynamic_img_size it runs on the protocol's 227 x 227 crops
        assert trunk(torch.randn(1, 3, 227, 227)).shape == (1, reference.num_features)


def test_imagenet_normalised_model_has_no_input_layer():
    assert build_trunk("timm:resnet18", pretrained=False).input_transform is None


def test_weights_come_from_the_hugging_face_cache(caches):
    _, hf_cache = caches
    state = random_state(CNN, seed=3)
    write_hf_cached_file(hf_cache, CNN_REPO, "model.safetensors", state)
    check_pretrained_weights(f"timm:{CNN}", pretrained=True)
    trunk = build_trunk(f"timm:{CNN}", pretrained=True)
    loaded = trunk.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))
    assert "fc.weight" not in loaded  # the classifier is dropped


def test_weights_from_a_named_file(tmp_path, caches):
    state = random_state(CNN, seed=4)
    torch.save(state, tmp_path / "mine.pth")
    trunk = build_trunk(f"timm:{CNN}", pretrained=True, weights=str(tmp_path / "mine.pth"))
    assert torch.equal(trunk.model.conv1[0].weight, state["conv1.0.weight"])


def test_missing_weights_are_a_one_line_error_naming_repo_and_files(caches):
    _, hf_cache = caches
    for call in (lambda: build_trunk(f"timm:{CNN}", pretrained=True),
                 lambda: check_pretrained_weights(f"timm:{CNN}", pretrained=True)):
        with pytest.raises(ConfigError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message
        for text in (CNN_REPO, "model.safetensors", str(hf_cache), "model.weights", "model.pretrained: false"):
            assert text in message, (text, message)


def test_weights_of_another_model_are_refused(tmp_path, caches):
    torch.save(random_state("test_convnext", seed=0), tmp_path / "other.pth")
    refused = "could not load the weights of timm model 'test_resnet'.*Missing key"
    with pytest.raises(ConfigError, match=refused) as info:
        build_trunk(f"timm:{CNN}", pretrained=True, weights=str(tmp_path / "other.pth"))
    assert "\n" not in str(info.value)


def test_unknown_name_is_a_config_error():
    with pytest.raises(ConfigError, match="'test_resnett' is not a timm model.*test_resnet"):
        build_trunk("timm:test_resnett", pretrained=False)


def test_frozen_regime_caches_the_map_and_refuses_before_last():
    trunk = build_trunk(f"timm:{CNN}", pretrained=False).eval()
    encoder, last = frozen_encoder(trunk, "after_last", 1)
    with torch.no_grad():
        assert last is None and encoder(torch.randn(2, 3, 64, 64)).shape == (2, trunk.channels, 1, 1)
    with pytest.raises(ConfigError, match="'frozen.cut': timm:test_resnet supports only after_last"):
        frozen_encoder(trunk, "before_last", 1)
