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
from benchmark.training import checkpoint, trainer
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
    original = checkpoint.copy.deepcopy

    def spy(obj, *a):
        out = original(obj, *a)
        if isinstance(obj, dict) and "embedder.weight" in obj:
            snapshots[len(snapshots)] = out["embedder.weight"].clone()
        return out

    monkeypatch.setattr(checkpoint.copy, "deepcopy", spy)
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


# -- the loop against the same loop written out in one function ----------------------------------
def plain_loop(model, method, train, evals, cfg, *, seed, m_per_class, warmup_epochs=0):
    """The fold loop written out in one function (as the trainer was before it was built from parts):
    the trainer must give the same weights and the same validation curve, bit for bit."""
    import copy
    import math

    from benchmark.training.batch_loader import training_batches

    trainer.seed_everything(seed)
    model = method.configure_model(model)
    optimizer = trainer.make_optimizer(model, method, cfg)
    sampler = method.batch_sampler(train.labels, batch_size=cfg.batch_size, m_per_class=m_per_class, seed=seed)
    if sampler is None:
        sampler = ClassBalancedBatches(train.labels, batch_size=cfg.batch_size, m_per_class=m_per_class, seed=seed)
    stream = training_batches(train, sampler, seed=seed, num_workers=0)
    state = trainer.TrainState(model=model, train_set=train, train_eval_set=evals, device=torch.device("cpu"),
                               seed=seed, cfg=cfg)
    trainable = [p.requires_grad for p in model.trunk.parameters()]
    best, best_epoch, best_state, curve, iteration = -math.inf, 0, copy.deepcopy(model.state_dict()), [], 0
    for epoch in range(1, cfg.max_epochs + 1):
        state.epoch, state.iteration = epoch, iteration
        model.train()
        method.train()
        for p, was in zip(model.trunk.parameters(), trainable):
            p.requires_grad_(was and epoch > warmup_epochs)
        method.on_epoch_start(epoch, state)
        model.train()
        for _ in range(cfg.iterations_per_epoch):
            x, y, idx = next(stream)
            loss = method.training_step(model, x, y, idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            iteration += 1
        if epoch % cfg.val_interval == 0 or epoch == cfg.max_epochs:
            value = trainer.validate(model, evals, torch.device("cpu"), cfg)
            curve.append((epoch, iteration, value))
            if value > best:
                best, best_epoch, best_state = value, epoch, copy.deepcopy(model.state_dict())
        if epoch - best_epoch >= cfg.patience and epoch < cfg.max_epochs:
            break
    model.load_state_dict(best_state)
    return model.state_dict(), curve


@pytest.mark.parametrize("name, warmup", [("contrastive", 0), ("proxy_nca_pp", 1), ("dcml", 0), ("magnet", 0)],
                         ids=["default-step", "warmup-and-loss-parameters", "own-step-and-model", "own-sampler"])
def test_the_trainer_gives_the_plain_loops_model(name, warmup):
    from benchmark.data.builtin import BuiltinEvalTransform, BuiltinTrainTransform
    from benchmark.methods import MethodContext, get_method

    data = tiny_set(n_classes=8, per_class=6)
    train = data.with_transform(BuiltinTrainTransform())
    evals = data.with_transform(BuiltinEvalTransform())
    spec = get_method(name)
    config = cfg(batch_size=8, max_epochs=4, iterations_per_epoch=3, patience=2)
    runs = []
    for loop in ("trainer", "plain"):
        torch.manual_seed(0)
        model = EmbeddingModel(SmallCNN(width=4), 8)
        method = spec.create(MethodContext(num_classes=8, embedding_dim=8))
        if loop == "trainer":
            model, result = trainer.train_fold(model=model, method=method, train_set=train, train_eval_set=evals,
                                               val_set=evals, cfg=config, device=torch.device("cpu"), seed=3,
                                               m_per_class=2, warmup_epochs=warmup, progress=False)
            runs.append((model.state_dict(), result.curve))
        else:
            runs.append(plain_loop(model, method, train, evals, config, seed=3, m_per_class=2, warmup_epochs=warmup))
    (weights, curve), (plain_weights, plain_curve) = runs
    assert curve == plain_curve and len(curve) >= 2
    assert weights.keys() == plain_weights.keys()
    assert all(torch.equal(weights[k], plain_weights[k]) for k in weights)


# -- the caller's callbacks and the model's type -----------------------------------------------
def test_on_validation_follows_each_validation_and_may_stop_the_fold(monkeypatch):
    scores = iter([0.2, 0.5, 0.3, 0.9])
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: next(scores))
    snapshots = []
    original = checkpoint.copy.deepcopy

    def spy(obj, *a):
        if isinstance(obj, dict) and "embedder.weight" in obj:  # a checkpoint (not deepcopy's inner calls)
            snapshots.append(1)
        return original(obj, *a)

    monkeypatch.setattr(checkpoint.copy, "deepcopy", spy)
    seen, beats = [], []

    class Pruned(Exception):
        pass

    def on_validation(epoch, iteration, value):
        seen.append((epoch, iteration, value, len(snapshots)))  # snapshots: the initial one + one per new best
        if epoch == 3:
            raise Pruned

    data = tiny_set()
    model = EmbeddingModel(SmallCNN(width=4), 8)
    with pytest.raises(Pruned):
        trainer.train_fold(model=model, method=ConstantLossTrainable(), train_set=data, train_eval_set=data,
                           val_set=data, cfg=cfg(max_epochs=6, patience=5), device=torch.device("cpu"), seed=0,
                           m_per_class=2, warmup_epochs=10, progress=False, heartbeat=lambda: beats.append(1),
                           on_validation=on_validation)
    assert seen == [(1, 2, 0.2, 2), (2, 4, 0.5, 3), (3, 6, 0.3, 3)]
    assert len(beats) == 2  # after epochs 1 and 2; epoch 3 stopped at its validation
    assert all(p.requires_grad for p in model.trunk.parameters())  # cleaned up: the warm-up's freeze undone


def test_the_model_must_be_a_trunk_model():
    data = tiny_set()
    kwargs = dict(train_set=data, train_eval_set=data, val_set=data, cfg=cfg(max_epochs=1),
                  device=torch.device("cpu"), seed=0, m_per_class=2, progress=False)
    with pytest.raises(TypeError, match="train_fold was given a Sequential, not a TrunkModel"):
        trainer.train_fold(model=torch.nn.Sequential(SmallCNN(width=4)), method=ConstantLossTrainable(), **kwargs)

    class NewHead(ConstantLossTrainable):
        def configure_model(self, model):
            return torch.nn.Sequential(model.trunk, torch.nn.Linear(model.trunk.out_dim, 8))

    with pytest.raises(TypeError, match="NewHead.configure_model returned a Sequential, not a TrunkModel"):
        trainer.train_fold(model=EmbeddingModel(SmallCNN(width=4), 8), method=NewHead(), **kwargs)
