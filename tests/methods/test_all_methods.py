"""Every registered method builds, runs forward and backward, and accepts configurations from its space."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from torch import nn

from benchmark.methods import MethodContext, get_method, list_methods
from benchmark.methods.search_space import suggest
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN

NUM_CLASSES, PER_CLASS, FEATURES, EMBEDDING = 8, 4, 24, 16
CTX = MethodContext(num_classes=NUM_CLASSES, embedding_dim=EMBEDDING)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _batch(seed: int = 0) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    """A Linear embedder over random features; 8 classes x 4 samples."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    embedder = nn.Linear(FEATURES, EMBEDDING)
    features = torch.randn(NUM_CLASSES * PER_CLASS, FEATURES, generator=gen)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(PER_CLASS)
    return embedder, features, labels


@pytest.mark.parametrize("name", [spec.name for spec in list_methods()])
def test_method_trains_and_samples_its_space(name):
    spec = get_method(name)
    embedder, features, labels = _batch()

    # defaults: forward, backward, gradients on the embedder and on the method's own parameters
    torch.manual_seed(0)
    method = spec.create(CTX)
    own = [p for p in method.parameters() if p.requires_grad]
    assert bool(own) == spec.has_parameters
    loss = method(embedder(features), labels)
    assert loss.ndim == 0 and math.isfinite(loss.item())
    loss.backward()
    assert embedder.weight.grad is not None and embedder.weight.grad.abs().sum() > 0
    if spec.has_parameters:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in own)
        groups = method.optimizer_groups(default_lr=1e-6, weight_decay=1e-4)
        assert len(groups) == 1 and groups[0]["lr"] == spec.defaults["loss_lr"]
    else:
        assert method.optimizer_groups(default_lr=1e-6, weight_decay=1e-4) == []

    # three configurations drawn from the search space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        hp = suggest(study.ask(), spec.search_space)
        sampled = spec.create(CTX, hp)
        if spec.has_parameters:
            assert sampled.loss_lr == hp["loss_lr"]
        with torch.no_grad():
            value = sampled(embedder(features), labels)
        assert math.isfinite(value.item()), hp

    # the method's model hook keeps a working model
    torch.manual_seed(0)
    model = method.configure_model(EmbeddingModel(SmallCNN(width=8), embedding_dim=EMBEDDING))
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, EMBEDDING) and torch.isfinite(out).all()


def test_proxy_nca_pp_head_is_max_pooling_then_layernorm():
    method = get_method("proxy_nca_pp").create(CTX)
    torch.manual_seed(0)
    trunk = SmallCNN(width=8)
    model = method.configure_model(EmbeddingModel(trunk, embedding_dim=EMBEDDING))
    assert method.configure_model(model).trunk.trunk is trunk  # idempotent, wraps the original trunk
    assert model.trunk.out_dim == trunk.out_dim
    x = torch.randn(3, 3, 32, 32)
    fmap = trunk.feature_map(x)
    pooled = model.trunk(x)
    maxed = fmap.amax(dim=(2, 3))
    expected = (maxed - maxed.mean(1, keepdim=True)) / torch.sqrt(maxed.var(1, unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(pooled, expected, atol=1e-5)
    assert not list(model.trunk.pooling.parameters())  # LayerNorm without affine
    assert torch.allclose(model.trunk.feature_map(x), fmap)


def test_cross_batch_memory_accumulates_batches():
    method = get_method("contrastive_xbm").create(CTX, {"memory_size": 128})
    embedder, features, labels = _batch()
    with torch.no_grad():
        for _ in range(3):
            method(embedder(features), labels)
    assert method.loss.queue_idx == 3 * len(labels) % 128


FROZEN_CASES = [(spec.name, False) for spec in list_methods()] + [
    (name, True) for name in ("dcml", "proxy_nca_pp", "mahalanobis", "contrastive")]  # the map's users


@pytest.mark.parametrize("name, stage", FROZEN_CASES,
                         ids=[f"{n}-{'before_last' if s else 'after_last'}" for n, s in FROZEN_CASES])
def test_method_trains_in_the_frozen_regime(name, stage):
    """Two epochs of training on cached trunk outputs (a 16 x 4 x 4 map; with ``before_last`` a trainable
    last stage on it), through every hook the trainer calls, then the evaluation embedding."""
    from benchmark.config import TrainingConfig
    from benchmark.data.tensor_sets import TensorSet, ViewSet
    from benchmark.models.cached_trunk import CachedTrunk
    from benchmark.training.trainer import train_fold

    spec = get_method(name)
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(PER_CLASS).numpy()
    views = ViewSet(torch.randn(len(labels), 2, 16, 4, 4, generator=gen), labels)
    evals = TensorSet(views.values[:, 0].clone(), labels)
    torch.manual_seed(0)
    last = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()) if stage else None
    trunk = CachedTrunk((16, 4, 4), grid=2, stage=last)
    assert trunk.out_dim == 64 and trunk.channels == 16
    model = EmbeddingModel(trunk, embedding_dim=EMBEDDING)
    torch.manual_seed(0)
    method = spec.create(MethodContext(num_classes=NUM_CLASSES, embedding_dim=EMBEDDING))
    cfg = TrainingConfig(batch_size=16, m_per_class=4, iterations_per_epoch=3, max_epochs=2, val_interval=1,
                         patience=5, optimizer="adam", lr_trunk=1e-3, lr_embedder=1e-3)
    model, result = train_fold(model=model, method=method, train_set=views, train_eval_set=evals, val_set=evals,
                               cfg=cfg, device=torch.device("cpu"), seed=0,
                               m_per_class=min(spec.m_per_class, cfg.m_per_class),
                               warmup_epochs=spec.warmup_epochs, progress=False)
    assert result.iterations == 6 and result.status == "completed", result
    with torch.no_grad():
        out = model(evals.values[:5])
    assert out.shape == (5, EMBEDDING) and torch.isfinite(out).all()
