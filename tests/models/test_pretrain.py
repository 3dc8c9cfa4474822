"""The cached pretraining of the small CNN trunk (tiny pools, a temporary cache folder)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.errors import ConfigError
from benchmark.models import pretrain
from benchmark.models.pretrain import pretrained_small_cnn, trunk_cache_path
from benchmark.models.trunks import SmallCNN

TINY = dict(epochs=1, pool_classes=4, pool_images_per_class=4, batch_size=8, progress=False)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DML_BENCH_CACHE", str(tmp_path))


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_trains_once_then_loads_from_cache(tmp_path, monkeypatch):
    first = pretrained_small_cnn(seed=0, **TINY)
    assert isinstance(first, SmallCNN) and not first.training
    files = list((tmp_path / "trunks").glob("*.pt"))
    assert len(files) == 1
    assert files[0] == trunk_cache_path(seed=0, epochs=1, pool_classes=4, pool_images_per_class=4, batch_size=8)
    assert not _same(first, SmallCNN())  # it was trained

    def fail(*_, **__):
        raise AssertionError("should have been loaded from the cache")

    monkeypatch.setattr(pretrain, "_train", fail)
    second = pretrained_small_cnn(seed=0, **TINY)
    assert _same(first, second)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(first(x), second(x))


def test_deterministic_and_seed_dependent():
    a = pretrained_small_cnn(seed=1, cache=False, **TINY)
    b = pretrained_small_cnn(seed=1, cache=False, **TINY)
    c = pretrained_small_cnn(seed=2, cache=False, **TINY)
    assert _same(a, b)
    assert not _same(a, c)


def test_caller_rng_untouched_and_no_cache_written(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    pretrained_small_cnn(seed=0, cache=False, **TINY)
    torch.testing.assert_close(torch.rand(3), expected)
    assert not (tmp_path / "trunks").exists()


def test_corrupt_cache_file_is_retrained(tmp_path):
    first = pretrained_small_cnn(seed=0, **TINY)
    (path,) = (tmp_path / "trunks").glob("*.pt")
    path.write_bytes(b"garbage")
    again = pretrained_small_cnn(seed=0, **TINY)
    assert _same(first, again)
    state = torch.load(path, weights_only=True)
    assert state.keys() == first.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in first.state_dict().items())


def test_other_parameters_use_another_cache_entry(tmp_path):
    pretrained_small_cnn(seed=0, **TINY)
    pretrained_small_cnn(seed=0, **{**TINY, "epochs": 2})
    assert len(list((tmp_path / "trunks").glob("*.pt"))) == 2


@pytest.mark.parametrize("kw, option", [({"epochs": 0}, "epochs"), ({"seed": -1}, "seed"),
                                        ({"lr": 0.0}, "lr"), ({"epochs": 1.5}, "epochs")])
def test_invalid_arguments(kw, option):
    with pytest.raises(ConfigError, match=rf"^{option} must be"):
        pretrained_small_cnn(cache=False, progress=False, **kw)


def test_numpy_integer_seed_is_accepted_like_the_builtin_dataset_does():
    """The shared ``check_int``: a numpy seed passes (the epochs check is the one that fails here)."""
    with pytest.raises(ConfigError, match=r"^epochs must be"):
        pretrained_small_cnn(seed=np.int64(3), epochs=0, cache=False, progress=False)


class Stop(Exception):
    """Stands for a kill in the middle of a pretraining."""


@pytest.mark.parametrize("every, stop_at", [(3, 7), (4, 9), (3, 11)],
                         ids=["mid-epoch", "epoch-boundary", "last-epoch"])
def test_a_stopped_pretraining_resumes_from_its_checkpoint_to_the_same_weights(every, stop_at, tmp_path, monkeypatch):
    kw = dict(seed=0, epochs=3, pool_classes=4, pool_images_per_class=8, batch_size=8, progress=False)  # 12 steps
    uninterrupted = pretrained_small_cnn(cache=False, **kw)
    monkeypatch.setattr(pretrain, "CHECKPOINT_EVERY", every)
    steps: list[int] = []
    stopped = []

    def stop(step):
        steps.append(step)
        if step == stop_at and not stopped:
            stopped.append(step)
            raise Stop

    monkeypatch.setattr(pretrain, "_after_step", stop)
    with pytest.raises(Stop):
        pretrained_small_cnn(**kw)
    final = trunk_cache_path(seed=0, epochs=3, pool_classes=4, pool_images_per_class=8, batch_size=8)
    partial = pretrain.checkpoint_path(final)
    assert not final.exists() and partial.is_file()
    assert torch.load(partial, weights_only=True)["step"] == stop_at - stop_at % every
    steps.clear()
    resumed = pretrained_small_cnn(**kw)
    assert steps == list(range(stop_at - stop_at % every + 1, 13))  # from the checkpoint on, not from 0
    assert _same(resumed, uninterrupted)
    assert final.is_file() and not partial.exists()


def test_a_torn_checkpoint_is_ignored(tmp_path, monkeypatch):
    kw = dict(seed=0, epochs=1, pool_classes=4, pool_images_per_class=8, batch_size=8, progress=False)
    final = trunk_cache_path(seed=0, epochs=1, pool_classes=4, pool_images_per_class=8, batch_size=8)
    partial = pretrain.checkpoint_path(final)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"torn")
    assert _same(pretrained_small_cnn(**kw), pretrained_small_cnn(cache=False, **kw))
    assert not partial.exists()
