"""Trunks and the model factory: shapes, frozen BatchNorm, independent seeded embedders."""

from __future__ import annotations

import pytest
import torch

from benchmark.config import ModelConfig
from benchmark.errors import ConfigError
from benchmark.models.build import ModelFactory
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN, build_trunk


def test_small_cnn_shapes():
    trunk = SmallCNN()
    fmap = trunk.feature_map(torch.zeros(2, 3, 32, 32))
    assert fmap.shape == (2, 128, 4, 4) and trunk.out_dim == 128
    assert EmbeddingModel(trunk, 64)(torch.zeros(2, 3, 32, 32)).shape == (2, 64)


@pytest.mark.parametrize("name, dim", [("resnet50", 2048), ("googlenet", 1024)])
def test_torchvision_trunks_without_weights(name, dim):
    trunk = build_trunk(name, pretrained=False)
    assert trunk.out_dim == dim
    with torch.no_grad():
        assert trunk.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, dim)


def test_unknown_trunk():
    with pytest.raises(ConfigError, match="unknown trunk"):
        build_trunk("vit", pretrained=False)


def test_frozen_batchnorm_keeps_running_stats():
    model = EmbeddingModel(SmallCNN(width=4), 8, freeze_bn=True).train()
    bn = next(m for m in model.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    model(torch.randn(4, 3, 32, 32) * 5 + 3)
    assert torch.equal(bn.running_mean, before) and not bn.training
    free = EmbeddingModel(SmallCNN(width=4), 8, freeze_bn=False).train()
    bn = next(m for m in free.trunk.modules() if isinstance(m, torch.nn.BatchNorm2d))
    free(torch.randn(4, 3, 32, 32) * 5 + 3)
    assert not torch.equal(bn.running_mean, before)


def test_factory_models_share_trunk_weights_but_not_embedders():
    factory = ModelFactory(ModelConfig(trunk="small_cnn", pretrained=False, embedding_dim=16), progress=False)
    a, b, a2 = factory.new(1), factory.new(2), factory.new(1)
    assert torch.equal(a.trunk.body[0][0].weight, b.trunk.body[0][0].weight)
    assert a.trunk.body[0][0].weight is not b.trunk.body[0][0].weight
    assert not torch.equal(a.embedder.weight, b.embedder.weight)
    assert torch.equal(a.embedder.weight, a2.embedder.weight)


@pytest.mark.parametrize("transform_input", [True, False])
def test_googlenet_trunk_equals_torchvisions_forward_on_the_same_weights(transform_input):
    """The pooled features are torchvision's own forward up to its classifier, input rescaling included."""
    import torchvision

    from benchmark.models.trunks import TorchvisionTrunk

    torch.manual_seed(0)
    net = torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=transform_input,
                                       init_weights=True).eval()
    trunk = TorchvisionTrunk.from_network("googlenet", net).eval()
    x = torch.randn(2, 3, 96, 96)
    net.dropout, net.fc = torch.nn.Identity(), torch.nn.Identity()
    def rel(a, b):  # the randomly initialised net's features are tiny: compare relative to their size
        return float((a - b).norm() / b.norm())

    with torch.no_grad():
        expected = net(x)
        assert expected.norm() > 0
        assert rel(trunk(x), expected) < 1e-5
        before, last = trunk.split_last_stage()
        assert rel(last(before(x)).mean(dim=(2, 3)), expected) < 1e-5
        if transform_input:  # without the rescaling the features differ: the bug this guards against
            assert rel(trunk.body[1:](x).mean(dim=(2, 3)), expected) > 0.05


def test_untrained_googlenet_has_no_input_transform():
    """Without weights torchvision leaves transform_input off, and so does the trunk."""
    assert not any(type(m).__name__ == "GoogLeNetInputTransform"
                   for m in build_trunk("googlenet", pretrained=False).modules())
