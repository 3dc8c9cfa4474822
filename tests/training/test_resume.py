"""A fold stopped and resumed from its saved state ends bit for bit as the same fold trained straight through.

Every registered method trains a small fold twice: straight through, and stopped by a stop request
(``benchmark.training.interrupt``, what a SIGTERM does) in the middle of an epoch, its state written to
disk and loaded into a freshly built model and method, then resumed; states saved at validations too.
The final weights, the method's state, the validation curve and the result must be identical.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.config import TrainingConfig
from benchmark.data.base import ArrayImageSet
from benchmark.data.tensor_sets import ViewSet
from benchmark.methods import MethodContext, get_method, list_methods
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN
from benchmark.training import trainer
from benchmark.training.resume import load_fold_state
from tests.training.stops import Stop

N_CLASSES, PER_CLASS, EMB = 8, 6, 16


def tiny_set(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    return ArrayImageSet(rng.integers(0, 255, size=(len(labels), 16, 16, 3), dtype=np.uint8), labels)


def cfg(**kw):
    base = dict(batch_size=8, m_per_class=2, iterations_per_epoch=3, max_epochs=4, val_interval=1, patience=10,
                optimizer="adam", lr_trunk=1e-3, lr_embedder=1e-3, eval_batch_size=16)
    base.update(kw)
    return TrainingConfig(**base)


def build(name):
    """The fold's model and method, built the same way every time (as the workbench does from seeds)."""
    torch.manual_seed(1)
    model = EmbeddingModel(SmallCNN(width=4), EMB)
    torch.manual_seed(2)
    method = get_method(name).create(MethodContext(num_classes=N_CLASSES, embedding_dim=EMB))
    return model, method


class Saved(list):
    """``save_state`` that writes each state to a file at once (the state refers to live tensors, as a worker's
    does when it writes it), and reads them back: what a worker that takes the unit over would load."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def append(self, state):
        path = self.folder / f"state-{len(self)}.pt"
        torch.save(state.to_dict(), path)
        super().append(load_fold_state(path, torch.device("cpu")))


def train(name, *, data=None, resume=None, saved=None, **kw):
    data = tiny_set() if data is None else data
    model, method = build(name)
    spec = get_method(name)
    c = cfg(**kw)
    return trainer.train_fold(model=model, method=method, train_set=data, train_eval_set=data, val_set=data, cfg=c,
                              device=torch.device("cpu"), seed=7, m_per_class=min(spec.m_per_class, c.m_per_class),
                              warmup_epochs=spec.warmup_epochs, progress=False,
                              save_state=None if saved is None else saved.append, resume=resume)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", [spec.name for spec in list_methods()])
def test_stopped_and_resumed_fold_equals_uninterrupted(name, tmp_path, stop_at_call):
    straight, result = train(name, max_epochs=3)
    saved = Saved(tmp_path)
    stop_at_call(5)  # in the middle of epoch 2 (3 iterations per epoch), after a validation
    with pytest.raises(Stop):
        train(name, saved=saved, max_epochs=3)
    stopped = saved[-1]
    assert (stopped.epoch, stopped.step, stopped.iteration) == (2, 2, 5)
    assert [s.step for s in saved] == [None, 2]  # the validation after epoch 1, then the stop
    stop_at_call(None)
    resumed, resumed_result = train(name, resume=stopped, max_epochs=3)
    assert resumed_result == result
    assert same_weights(resumed, straight)


def test_resumed_fold_goes_on_from_every_validation(tmp_path):
    """Every state saved at a validation resumes to the same end; none is saved after the last epoch."""
    saved = Saved(tmp_path)
    straight, result = train("proxy_anchor", saved=saved, max_epochs=5)
    assert [s.epoch for s in saved] == [1, 2, 3, 4] and all(s.step is None for s in saved)
    for state in saved:
        model, res = train("proxy_anchor", resume=state, max_epochs=5)
        assert res == result and same_weights(model, straight)


def test_early_stopped_fold_resumes_to_the_same_stop(tmp_path, monkeypatch):
    """Patience that runs out after a resume stops at the same epoch with the same best checkpoint."""
    scores = [0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    calls = {"n": 0}

    def scripted(*a, **k):
        calls["n"] += 1
        return scores[calls["n"] - 1]

    monkeypatch.setattr(trainer, "validate", scripted)
    saved = Saved(tmp_path)
    straight, result = train("contrastive", saved=saved, max_epochs=6, patience=2)
    assert result.status == trainer.EARLY_STOPPED and result.best_epoch == 1
    calls["n"] = saved[0].epoch
    model, res = train("contrastive", resume=saved[0], max_epochs=6, patience=2)
    assert res == result and same_weights(model, straight)


def test_frozen_views_resume(tmp_path, stop_at_call):
    """The frozen regime's cached trunk outputs: the view generator goes on where it stopped."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    views = ViewSet(torch.as_tensor(rng.normal(size=(len(labels), 3, 8, 4, 4)).astype(np.float32)), labels)

    def run(**kw):
        torch.manual_seed(1)
        from benchmark.models.cached_trunk import CachedTrunk

        model = EmbeddingModel(CachedTrunk((8, 4, 4), grid=1), EMB)
        torch.manual_seed(2)
        method = get_method("multi_similarity").create(MethodContext(num_classes=N_CLASSES, embedding_dim=EMB))
        one = views.subset(np.arange(len(labels)))
        return trainer.train_fold(model=model, method=method, train_set=views, train_eval_set=one, val_set=one,
                                  cfg=cfg(), device=torch.device("cpu"), seed=3, m_per_class=2, progress=False, **kw)

    straight, result = run()
    saved = Saved(tmp_path)
    stop_at_call(4)
    with pytest.raises(Stop):
        run(save_state=saved.append)
    stop_at_call(None)
    model, res = run(resume=saved[-1])
    assert res == result and same_weights(model, straight)


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_resume_where_they_stopped_with_loader_workers_reading_ahead(tmp_path, workers):
    """Loader workers draw from the sampler ahead of training: the state saved is the sampler's before the next
    batch the trainer takes, not its state now; the resumed stream gives the very batches that follow."""
    from benchmark.training.batches import fold_batches
    from tests.training.test_batch_loader import image_files

    images = image_files(tmp_path)
    _, method = build("contrastive")
    kwargs = dict(batch_size=8, m_per_class=2, seed=3, num_workers=workers, device=torch.device("cpu"))
    straight = fold_batches(method, images, **kwargs)
    expected = [next(straight) for _ in range(9)]
    straight.close()
    first = fold_batches(method, images, **kwargs)
    for _ in range(4):
        next(first)
    state = first.state_dict()
    first.close()
    assert state["taken"] == 4
    resumed = fold_batches(method, images, **kwargs, state=state)
    rest = [next(resumed) for _ in range(5)]
    resumed.close()
    for got, want in zip(rest, expected[4:]):
        assert all(torch.equal(a, b) for a, b in zip(got, want))
