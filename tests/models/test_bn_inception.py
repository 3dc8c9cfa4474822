"""BN-Inception: the port's architecture and key names, its input scale, its weights file and its errors.

All on random weights (the real file is not needed): a random state dict with the port's key names is
saved the way the original file is (the classifier included, no ``num_batches_tracked``), then read.
"""

from __future__ import annotations

import pytest
import torch

from benchmark.errors import ConfigError
from benchmark.models.bn_inception import WEIGHTS_FILE, BNInception, bn_inception, find_weights
from benchmark.models.cached_trunk import frozen_encoder
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import build_trunk, check_pretrained_weights
from tests.models.weight_caches import isolate_weight_caches

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    """The (empty, not yet created) torch hub checkpoints folder of this test."""
    return isolate_weight_caches(monkeypatch, tmp_path)[0]


def random_port_state(seed: int = 0) -> dict:
    """A state dict shaped like the original file: every layer random (BN statistics too), plus the classifier."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in BNInception().net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("running_var") or (key.endswith(".weight") and value.dim() == 1):
            state[key] = torch.rand(value.shape, generator=g) + 0.5
        elif value.dim() == 1:
            state[key] = torch.randn(value.shape, generator=g) * 0.1
        else:  # He-scaled convolution weights keep the activations finite through the 60 layers
            state[key] = torch.randn(value.shape, generator=g) * (2.0 / value[0].numel()) ** 0.5
    state["last_linear.weight"] = torch.randn(1000, 1024, generator=g) * 0.01
    state["last_linear.bias"] = torch.zeros(1000)
    return state


def to_port_input(x: torch.Tensor) -> torch.Tensor:
    """The harness's ImageNet-normalised RGB batch as the port takes it: BGR, 0..255, minus (104, 117, 128)."""
    rgb255 = (x * STD + MEAN) * 255
    return rgb255[:, [2, 1, 0]] - torch.tensor([104.0, 117.0, 128.0]).view(1, 3, 1, 1)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_pooled_features_are_1024_wide_at_224():
    trunk = build_trunk("bn_inception", pretrained=False).eval()
    with torch.no_grad():
        fmap = trunk.feature_map(torch.randn(2, 3, 224, 224))
        assert fmap.shape == (2, 1024, 7, 7)
        assert trunk.pool(fmap).shape == (2, 1024) and trunk.out_dim == trunk.channels == 1024
        assert trunk(torch.randn(1, 3, 32, 32)).shape == (1, 1024)  # the built-in dataset's size runs too


def test_parameter_names_and_shapes_are_the_ports():
    """Spot checks against the port's layer table (the full check is the strict load into the port below)."""
    state = BNInception().net.state_dict()
    params = [k for k in state if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(params) == 2 * 2 * 69  # 69 convolutions, each with bias and a BatchNorm with weight and bias
    assert state["conv1_7x7_s2.weight"].shape == (64, 3, 7, 7)
    assert state["inception_3c_double_3x3_2.weight"].shape == (96, 96, 3, 3)
    assert state["inception_4e_3x3_bn.running_var"].shape == (192,)
    assert state["inception_5b_pool_proj.weight"].shape == (128, 1024, 1, 1)
    assert "inception_3c_1x1.weight" not in state and "inception_4e_pool_proj.weight" not in state


def test_equals_the_pretrainedmodels_port_on_the_same_weights(tmp_path, checkpoints):
    """Same random file into both; the trunk on the harness's input = the port on its own BGR 0..255 input."""
    pretrainedmodels = pytest.importorskip("pretrainedmodels")
    state = random_port_state()
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / WEIGHTS_FILE)
    port = pretrainedmodels.bninception(num_classes=1000, pretrained=None).eval()
    port.load_state_dict(torch.load(checkpoints / WEIGHTS_FILE, weights_only=True), strict=True)
    trunk = bn_inception(pretrained=True).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = port.global_pool(port.features(to_port_input(x))).flatten(1)
        assert expected.norm() > 0
        assert rel(trunk(x), expected) < 1e-5
        before, last = trunk.split_last_stage()
        assert rel(last(before(x)).mean(dim=(2, 3)), expected) < 1e-5
        # the harness's input fed to the port unconverted gives other features: the conversion matters
        assert rel(port.global_pool(port.features(x)).flatten(1), expected) > 0.05


def test_the_input_layer_converts_to_the_ports_scale():
    trunk = BNInception()
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(trunk.input_transform(x), to_port_input(x), atol=1e-4)


def test_file_in_the_hub_cache_is_loaded(checkpoints):
    state = random_port_state(seed=1)
    checkpoints.mkdir(parents=True)
    # the original file predates torch's zip format: saved the old way, as a pickle of protocol 2
    torch.save(state, checkpoints / WEIGHTS_FILE, _use_new_zipfile_serialization=False, pickle_protocol=2)
    trunk = build_trunk("bn_inception", pretrained=True)
    loaded = trunk.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("last_linear"))
    assert not torch.equal(loaded["conv1_7x7_s2.weight"], BNInception().net.state_dict()["conv1_7x7_s2.weight"])


def test_named_file_is_loaded_instead_of_the_cache(tmp_path, checkpoints):
    checkpoints.mkdir(parents=True)
    torch.save(random_port_state(seed=1), checkpoints / WEIGHTS_FILE)
    named = random_port_state(seed=2)
    torch.save(named, tmp_path / "mine.pth")
    trunk = build_trunk("bn_inception", pretrained=True, weights=str(tmp_path / "mine.pth"))
    assert torch.equal(trunk.net.inception_5b_3x3.weight, named["inception_5b_3x3.weight"])


def test_missing_file_is_a_one_line_error_naming_file_and_folder(checkpoints):
    for call in (lambda: build_trunk("bn_inception", pretrained=True),
                 lambda: check_pretrained_weights("bn_inception", pretrained=True)):
        with pytest.raises(ConfigError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and WEIGHTS_FILE in message and str(checkpoints) in message
        assert "model.weights" in message and "http" in message  # how to get it, or name it
    check_pretrained_weights("bn_inception", pretrained=False)  # random weights need no file


def test_a_file_of_another_network_is_refused(tmp_path, checkpoints):
    state = random_port_state()
    state["inception_5b_3x3.weight"] = torch.zeros(320, 192, 1, 1)
    del state["inception_3a_1x1.bias"]
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match=r"1 missing keys \['inception_3a_1x1.bias'\].*1 of another shape"):
        bn_inception(pretrained=True, weights=str(tmp_path / "other.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="could not read BN-Inception weights"):
        bn_inception(pretrained=True, weights=str(tmp_path / "junk.pth"))
    with pytest.raises(ConfigError, match="config key 'model.weights': no file at .*absent.pth"):
        find_weights(str(tmp_path / "absent.pth"))


def test_batchnorm_stays_frozen_in_training():
    model = EmbeddingModel(BNInception(), 16, freeze_bn=True).train()
    bn = model.trunk.net.inception_4a_1x1_bn
    before = bn.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert not bn.training and torch.equal(bn.running_mean, before)


def test_frozen_regime_cuts():
    trunk = BNInception().eval()
    x = torch.randn(2, 3, 64, 64)
    encoder, last = frozen_encoder(trunk, "before_last", 1)
    with torch.no_grad():
        cached = encoder(x)
        assert cached.shape[1] == 1056  # inception_4e's output: 5a and 5b train on it
        assert rel(last(cached), trunk.feature_map(x)) < 1e-5
    assert {n for n, _ in last.named_parameters()} <= {n for n, _ in trunk.net.named_parameters()}
    assert all(n.startswith("inception_5") for n, _ in last.named_parameters())
    encoder, last = frozen_encoder(trunk, "after_last", 2)
    assert last is None and encoder(x).shape == (2, 1024, 2, 2)
