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
