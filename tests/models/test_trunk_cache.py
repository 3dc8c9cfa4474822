"""The frozen regime's cache of trunk outputs: equal to a fresh pass, keyed by everything, never trusting a bad file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.data.base import ArrayImageSet
from benchmark.data.builtin import BuiltinEvalTransform, BuiltinTrainTransform
from benchmark.models.cached_trunk import frozen_encoder
from benchmark.models.trunk_cache import cache_path, state_digest, trunk_outputs
from benchmark.models.trunks import SmallCNN


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DML_BENCH_CACHE", str(tmp_path))
    return tmp_path


def images(n: int = 10, seed: int = 0) -> ArrayImageSet:
    rng = np.random.default_rng(seed)
    return ArrayImageSet(rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), np.arange(n) // 2)


def trunk(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(width=8).eval()


def key_of(encoder, imgs, transform, cut="after_last", grid=4, options=None):
    return {"encoder": state_digest(encoder), "architecture": repr(encoder), "images": imgs.fingerprint(),
            "transform": repr(transform), "cut": cut, "grid": grid, "options": options or {}}


def test_cached_outputs_equal_a_fresh_trunk_pass():
    net, imgs, tf = trunk(), images(), BuiltinEvalTransform()
    encoder, _ = frozen_encoder(net, "after_last", 4)
    first = trunk_outputs(encoder, imgs, tf, views=None, key=key_of(encoder, imgs, tf), progress=False)
    again = trunk_outputs(encoder, imgs, tf, views=None, key=key_of(encoder, imgs, tf), progress=False)
    with torch.no_grad():
        fresh = net.feature_map(torch.stack([imgs.with_transform(tf)[i][0] for i in range(len(imgs))]))
    assert first.shape == fresh.shape == (10, 64, 4, 4)  # the 4 x 4 map is kept as it is
    assert torch.allclose(first, fresh, atol=1e-6) and torch.allclose(again, fresh, atol=1e-6)
    assert cache_path(dict(key_of(encoder, imgs, tf), views=None, seed=0, rows=10, version=1)).is_file()


def test_before_last_cut_caches_the_last_stage_input():
    net, imgs, tf = trunk(), images(), BuiltinEvalTransform()
    encoder, stage = frozen_encoder(net, "before_last", 4)
    values = trunk_outputs(encoder, imgs, tf, views=None, key=key_of(encoder, imgs, tf, "before_last"),
                           progress=False)
    x = torch.stack([imgs.with_transform(tf)[i][0] for i in range(len(imgs))])
    with torch.no_grad():
        assert torch.allclose(stage.eval()(values), net.feature_map(x), atol=1e-6)


def test_views_are_seeded_augmentations():
    net, imgs, tf = trunk(), images(), BuiltinTrainTransform()
    encoder, _ = frozen_encoder(net, "after_last", 2)
    key = key_of(encoder, imgs, tf, grid=2)
    a = trunk_outputs(encoder, imgs, tf, views=3, key=key, seed=5, cache=False, progress=False)
    b = trunk_outputs(encoder, imgs, tf, views=3, key=key, seed=5, cache=False, progress=False)
    c = trunk_outputs(encoder, imgs, tf, views=3, key=key, seed=6, cache=False, progress=False)
    assert a.shape == (10, 3, 64, 2, 2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[:, 0], a[:, 1])  # the views differ


def test_everything_the_values_depend_on_changes_the_key():
    net, imgs, tf = trunk(), images(), BuiltinEvalTransform()
    encoder, _ = frozen_encoder(net, "after_last", 4)
    base = dict(key_of(encoder, imgs, tf), views=None, seed=0, rows=10, version=1)
    other_trunk, _ = frozen_encoder(trunk(seed=1), "after_last", 4)
    variants = {
        "trunk": dict(base, encoder=state_digest(other_trunk)),
        "dataset options": dict(base, options={"context_bias": 0.5}),
        "images": dict(base, images=images(seed=1).fingerprint()),
        "transform": dict(base, transform=repr(BuiltinTrainTransform())),
        "views": dict(base, views=4),
        "cut": dict(base, cut="before_last"),
        "grid": dict(base, grid=2),
        "seed": dict(base, seed=1),
    }
    paths = {name: cache_path(key) for name, key in variants.items()}
    assert len(set(paths.values()) | {cache_path(base)}) == len(variants) + 1
    # a different key is never served the values of another
    first = trunk_outputs(encoder, imgs, tf, views=None, key=key_of(encoder, imgs, tf), progress=False)
    pooled, _ = frozen_encoder(net, "after_last", 1)
    second = trunk_outputs(pooled, imgs, tf, views=None, key=key_of(pooled, imgs, tf, grid=1), progress=False)
    assert first.shape == (10, 64, 4, 4) and second.shape == (10, 64, 1, 1)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_key"])
def test_a_damaged_cache_file_is_recomputed(damage):
    net, imgs, tf = trunk(), images(), BuiltinEvalTransform()
    encoder, _ = frozen_encoder(net, "after_last", 4)
    key = key_of(encoder, imgs, tf)
    good = trunk_outputs(encoder, imgs, tf, views=None, key=key, progress=False)
    path = cache_path(dict(key, views=None, seed=0, rows=10, version=1))
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\0" * len(data))
    else:  # a well-formed file for another key (e.g. copied over) holding wrong values
        torch.save({"key": "0" * 64, "values": torch.zeros_like(good)}, path)
    again = trunk_outputs(encoder, imgs, tf, views=None, key=key, progress=False)
    assert torch.allclose(again, good, atol=1e-6)
    assert torch.load(path, weights_only=True)["values"].shape == good.shape  # rewritten whole
