"""The fold trainer: best-validation checkpoint, early stopping, divergence, warm-up, class-balanced batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.config import TrainingConfig
from benchmark.data.base import ArrayImageSet
from benchmark.errors import ConfigError
from benchmark.methods import Method
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN
from benchmark.training import trainer
from benchmark.training.samplers import ClassBalancedBatches


def tiny_set(n_classes=8, per_class=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    images = rng.integers(0, 255, size=(len(labels), 16, 16, 3), dtype=np.uint8)
    return ArrayImageSet(images, labels)


class ConstantLoss(Method):
    """A loss whose value the test controls, through a learnable scalar so that backward works."""

    def __init__(self, values):
        super().__init__()
        self.values = list(values)
        self.calls = 0

    def forward(self, embeddings, labels, indices=None):
        v = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return embeddings.sum() * 0 + v


def cfg(**kw):
    base = dict(batch_size=8, m_per_class=2, iterations_per_epoch=2, max_epochs=6, val_interval=1, patience=2,
                optimizer="adam", lr_trunk=1e-3, lr_embedder=1e-3)
    base.update(kw)
    return TrainingConfig(**base)


def run(method, values_by_epoch, monkeypatch, **kw):
    """Train with validation scores scripted per validation call."""
    scores = iter(values_by_epoch)
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: next(scores))
    data = tiny_set()
    model = EmbeddingModel(SmallCNN(width=4), 8)
    return trainer.train_fold(model=model, method=method, train_set=data, train_eval_set=data, val_set=data,
                              cfg=cfg(**kw), device=torch.device("cpu"), seed=0, m_per_class=2, progress=False)


def test_early_stopping_and_best_checkpoint(monkeypatch):
    # validation after epochs 1, 2, ...: best at epoch 2, patience 2 -> stops after epoch 4
    _, result = run(ConstantLoss([1.0]), [0.2, 0.5, 0.3, 0.4, 0.9], monkeypatch)
    assert result.status == trainer.EARLY_STOPPED
    assert result.best_epoch == 2 and result.best_value == 0.5
    assert [e for e, _, _ in result.curve] == [1, 2, 3, 4]
    assert [it for _, it, _ in result.curve] == [2, 4, 6, 8]


def test_untrained_model_is_never_the_checkpoint(monkeypatch):
    # training only makes validation worse: the checkpoint is still a trained one (epoch 1)
    _, result = run(ConstantLoss([1.0]), [0.05, 0.04, 0.03], monkeypatch)
    assert result.best_epoch == 1 and result.best_value == 0.05


def test_best_weights_are_restored(monkeypatch):
    scores = iter([0.9, 0.1, 0.1])
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: next(scores))
    snapshots = {}
    original = trainer.copy.deepcopy

    def spy(obj, *a):
        out = original(obj, *a)
        if isinstance(obj, dict) and "embedder.weight" in obj:
            snapshots[len(snapshots)] = out["embedder.weight"].clone()
        return out

    monkeypatch.setattr(trainer.copy, "deepcopy", spy)
    data = tiny_set()
    model = EmbeddingModel(SmallCNN(width=4), 8)
    model, result = trainer.train_fold(
        model=model, method=ConstantLossTrainable(), train_set=data, train_eval_set=data, val_set=data,
        cfg=cfg(max_epochs=3, patience=5), device=torch.device("cpu"), seed=0, m_per_class=2, progress=False)
    assert result.best_epoch == 1
    assert torch.equal(model.embedder.weight, snapshots[1])  # epoch 1's weights, not the last epoch's
    assert not torch.equal(snapshots[0], snapshots[1])  # snapshot 0: the initial weights


class ConstantLossTrainable(Method):
    def forward(self, embeddings, labels, indices=None):
        return embeddings.pow(2).mean()


def test_nan_loss_ends_fold_as_diverged(monkeypatch):
    _, result = run(ConstantLoss([1.0, 1.0, 1.0, float("nan")]), [0.3, 0.2], monkeypatch)
    assert result.status == trainer.DIVERGED
    assert result.best_value == 0.3 and result.iterations == 3 and result.best_epoch == 1


def test_divergence_before_any_validation_scores_zero(monkeypatch):
    model, result = run(ConstantLoss([float("inf")]), [], monkeypatch)
    assert result.status == trainer.DIVERGED
    assert result.best_value == 0.0 and result.iterations == 0 and result.curve == []


def test_warmup_freezes_trunk_then_releases(monkeypatch):
    seen = []

    class Spy(ConstantLossTrainable):
        def on_epoch_start(self, epoch, state):
            seen.append(all(not p.requires_grad for p in state.model.trunk.parameters()))

    scores = iter([0.0] * 10)
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: next(scores))
    data = tiny_set()
    model = EmbeddingModel(SmallCNN(width=4), 8)
    before = [p.clone() for p in model.trunk.parameters()]
    trainer.train_fold(model=model, method=Spy(), train_set=data, train_eval_set=data, val_set=data,
                       cfg=cfg(max_epochs=1, patience=5), device=torch.device("cpu"), seed=0, m_per_class=2,
                       warmup_epochs=1, progress=False)
    assert seen == [True]
    assert all(torch.equal(a, b) for a, b in zip(before, model.trunk.parameters()))
    assert all(p.requires_grad for p in model.trunk.parameters())  # restored afterwards


def test_same_seed_same_model(monkeypatch):
    def train(seed):
        torch.manual_seed(123)
        data = tiny_set()
        model = EmbeddingModel(SmallCNN(width=4), 8)
        model, _ = trainer.train_fold(model=model, method=ConstantLossTrainable(), train_set=data,
                                      train_eval_set=data, val_set=data, cfg=cfg(max_epochs=2, patience=5),
                                      device=torch.device("cpu"), seed=seed, m_per_class=2, progress=False)
        return model.embedder.weight.detach().clone()

    assert torch.equal(train(1), train(1))


def test_class_balanced_batches():
    labels = np.repeat(np.arange(10), [5, 5, 5, 5, 5, 5, 5, 5, 5, 1])
    batches = ClassBalancedBatches(labels, batch_size=8, m_per_class=2, seed=0)
    for _ in range(20):
        batch = next(batches)
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert len(classes) == 4 and (counts == 2).all()
    again = ClassBalancedBatches(labels, batch_size=8, m_per_class=2, seed=0)
    first = ClassBalancedBatches(labels, batch_size=8, m_per_class=2, seed=0)
    assert [next(again) for _ in range(5)] == [next(first) for _ in range(5)]
    with pytest.raises(ConfigError, match="multiple"):
        ClassBalancedBatches(labels, batch_size=7, m_per_class=2, seed=0)
    with pytest.raises(ConfigError, match="needs 12 classes"):
        ClassBalancedBatches(labels, batch_size=24, m_per_class=2, seed=0)


def test_on_validation_sees_every_validation_after_the_checkpoint(monkeypatch):
    seen = []
    scores = iter([0.2, 0.5, 0.3, 0.4, 0.9])
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: next(scores))
    data = tiny_set()
    copies = []
    original = trainer.copy.deepcopy

    def spy(obj, *a):  # the best checkpoint is a copy of the state dict
        if isinstance(obj, dict) and "embedder.weight" in obj:
            copies.append(len(seen))
        return original(obj, *a)

    monkeypatch.setattr(trainer.copy, "deepcopy", spy)
    _, result = trainer.train_fold(model=EmbeddingModel(SmallCNN(width=4), 8), method=ConstantLoss([1.0]),
                                   train_set=data, train_eval_set=data, val_set=data, cfg=cfg(),
                                   device=torch.device("cpu"), seed=0, m_per_class=2, progress=False,
                                   on_validation=lambda *args: seen.append(args))
    assert seen == result.curve == [(1, 2, 0.2), (2, 4, 0.5), (3, 6, 0.3), (4, 8, 0.4)]
    # checkpoints: the initial weights, then at epochs 1 and 2, each taken before that epoch's callback
    assert copies == [0, 0, 1]


def test_what_on_validation_raises_ends_the_fold_and_propagates(monkeypatch):
    class Stop(Exception):
        pass

    closed = []
    real = trainer.training_batches

    def batches(*a, **k):  # a stream whose end is observed: the loader must be released
        stream = real(*a, **k)
        try:
            yield from stream
        finally:
            closed.append(True)

    monkeypatch.setattr(trainer, "training_batches", batches)
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: 0.5)
    calls = []

    def stop_at_second(epoch, iteration, value):
        calls.append(epoch)
        if epoch == 2:
            raise Stop()

    data = tiny_set()
    model = EmbeddingModel(SmallCNN(width=4), 8)
    with pytest.raises(Stop):
        trainer.train_fold(model=model, method=ConstantLoss([1.0]), train_set=data, train_eval_set=data,
                           val_set=data, cfg=cfg(), device=torch.device("cpu"), seed=0, m_per_class=2,
                           progress=False, on_validation=stop_at_second)
    import gc

    gc.collect()
    assert calls == [1, 2] and closed == [True]
    assert all(p.requires_grad for p in model.trunk.parameters())
