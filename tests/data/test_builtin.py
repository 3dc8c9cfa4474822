"""The built-in glyph dataset: determinism, class disjointness, the context-bias knob, caching, validation."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from benchmark.data import builtin
from benchmark.data.builtin import (
    DEFAULT_STYLE,
    GENERATOR_VERSION,
    BuiltinEvalTransform,
    BuiltinTrainTransform,
    class_strokes,
    load_builtin,
    load_pretrain_pool,
)
from benchmark.data.splits import first_half_classes, make_splits
from benchmark.errors import ConfigError

K = DEFAULT_STYLE.num_contexts


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DML_BENCH_CACHE", str(tmp_path))


def _small(**kw):
    return load_builtin(**{"num_classes": 10, "images_per_class": 4, "cache": False, **kw})


def test_shapes_labels_and_half_split():
    src = _small()
    assert src.name == "builtin"
    assert src.train.images.shape == (20, 32, 32, 3) and src.train.images.dtype == np.uint8
    assert src.test.images.shape == (20, 32, 32, 3)
    assert sorted(set(src.train.labels.tolist())) == list(range(5))
    assert sorted(set(src.test.labels.tolist())) == list(range(5, 10))
    all_labels = np.concatenate([src.train.labels, src.test.labels])
    np.testing.assert_array_equal(first_half_classes(all_labels), all_labels < 5)
    make_splits(src.train.labels, src.test.labels, n_folds=2)  # class-disjoint folds of 2+ validation classes each
    assert len(src.info["train_contexts"]) == len(src.train) and len(src.info["test_contexts"]) == len(src.test)
    x, y, i = src.train.with_transform(src.eval_transform)[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == src.train.labels[3] and i == 3


def test_default_size_is_a_real_benchmark():
    params = inspect.signature(load_builtin).parameters
    assert params["num_classes"].default >= 300
    assert params["num_classes"].default // 2 >= 150 and params["images_per_class"].default >= 8


def test_deterministic_for_a_seed_and_seeds_differ():
    a, b, c = _small(seed=3), _small(seed=3), _small(seed=4)
    np.testing.assert_array_equal(a.train.images, b.train.images)
    np.testing.assert_array_equal(a.test.images, b.test.images)
    np.testing.assert_array_equal(a.info["train_contexts"], b.info["train_contexts"])
    assert not np.array_equal(a.train.images, c.train.images)
    assert not np.array_equal(class_strokes(3, 0, 10), class_strokes(4, 0, 10))


def test_image_size_option():
    src = _small(image_size=48, num_classes=8, images_per_class=2)
    assert src.train.images.shape == (8, 48, 48, 3)


def test_instances_of_a_class_vary():
    src = _small(images_per_class=6)
    imgs = src.train.images[src.train.labels == 0].astype(np.float32)
    assert all(np.abs(imgs[0] - imgs[j]).mean() > 5 for j in range(1, 6))


def test_pool_classes_are_disjoint_from_evaluation_classes():
    eval_shapes = class_strokes(0, builtin._DOMAIN_EVAL_SHAPES, 50)
    pool_shapes = class_strokes(0, builtin._DOMAIN_POOL_SHAPES, 50)
    # no pool class has the control points of any evaluation class (different shape seeds)
    dist = np.abs(eval_shapes.reshape(50, 1, -1) - pool_shapes.reshape(1, 50, -1)).max(-1)
    assert dist.min() > 0.05
    pool = load_pretrain_pool(num_classes=6, images_per_class=3, cache=False)
    assert pool.images.shape == (18, 32, 32, 3)
    assert sorted(set(pool.labels.tolist())) == list(range(6))
    src = _small(num_classes=12, images_per_class=3)
    everything = np.concatenate([src.train.images, src.test.images]).reshape(36, -1)
    for img in pool.images.reshape(18, -1):
        assert not (everything == img).all(axis=1).any()


def test_pool_contexts_are_uniform():
    pool = load_pretrain_pool(num_classes=40, images_per_class=30, cache=False)
    counts = np.bincount(pool.contexts, minlength=K)
    assert counts.min() > 0.6 * len(pool) / K and counts.max() < 1.4 * len(pool) / K


def _own_context_fraction(labels, contexts, class_context):
    return float(np.mean(contexts == class_context[labels]))


def test_context_bias_zero_is_independent_of_class():
    src = _small(num_classes=24, images_per_class=60, context_bias=0.0, image_size=16)
    cc = src.info["class_context"]
    for split in ("train", "test"):
        labels, ctx = getattr(src, split).labels, src.info[f"{split}_contexts"]
        assert abs(_own_context_fraction(labels, ctx, cc) - 1 / K) < 0.04
        counts = np.bincount(ctx, minlength=K)
        assert counts.min() > 0.6 * len(ctx) / K and counts.max() < 1.4 * len(ctx) / K
        # each class sees many contexts
        for c in np.unique(labels):
            assert len(np.unique(ctx[labels == c])) >= K // 2


def test_context_bias_one_gives_each_training_class_its_context_only():
    src = _small(num_classes=24, images_per_class=60, context_bias=1.0, image_size=16)
    cc = src.info["class_context"]
    np.testing.assert_array_equal(src.info["train_contexts"], cc[src.train.labels])
    assert len(np.unique(cc[:12])) > 1  # classes are spread over contexts
    ctx, labels = src.info["test_contexts"], src.test.labels
    assert abs(_own_context_fraction(labels, ctx, cc) - 1 / K) < 0.04
    counts = np.bincount(ctx, minlength=K)
    assert counts.min() > 0.6 * len(ctx) / K and counts.max() < 1.4 * len(ctx) / K


def test_partial_context_bias():
    src = _small(num_classes=24, images_per_class=60, context_bias=0.5, image_size=16)
    frac = _own_context_fraction(src.train.labels, src.info["train_contexts"], src.info["class_context"])
    assert abs(frac - (0.5 + 0.5 / K)) < 0.05


def test_context_bias_changes_only_training_backgrounds():
    a, b = _small(context_bias=0.0), _small(context_bias=0.9)
    np.testing.assert_array_equal(a.test.images, b.test.images)  # same test set for every bias
    np.testing.assert_array_equal(a.info["test_contexts"], b.info["test_contexts"])
    assert not np.array_equal(a.train.images, b.train.images)


def test_cache_round_trip_and_corrupt_file(tmp_path, monkeypatch):
    kw = dict(num_classes=8, images_per_class=3, context_bias=0.25)
    first = load_builtin(**kw)
    files = list((tmp_path / "builtin").glob("*.npz"))
    assert len(files) == 1 and f"v{GENERATOR_VERSION}" in files[0].name
    assert not [p for p in (tmp_path / "builtin").iterdir() if p.suffix == ".tmp"]

    def fail(**_):
        raise AssertionError("should have been read from the cache")

    monkeypatch.setattr(builtin, "generate_builtin_arrays", fail)
    second = load_builtin(**kw)
    np.testing.assert_array_equal(first.train.images, second.train.images)
    np.testing.assert_array_equal(first.test.labels, second.test.labels)
    np.testing.assert_array_equal(first.info["train_contexts"], second.info["train_contexts"])
    monkeypatch.undo()
    monkeypatch.setenv("DML_BENCH_CACHE", str(tmp_path))

    files[0].write_bytes(b"not a zip file")
    third = load_builtin(**kw)  # regenerated, and the cache rewritten
    np.testing.assert_array_equal(first.train.images, third.train.images)
    with np.load(files[0]) as f:
        np.testing.assert_array_equal(f["test_images"], first.test.images)
    # a readable file with the wrong contents is regenerated too
    with open(files[0], "wb") as fh:
        np.savez_compressed(fh, **{k: np.zeros((1, 2, 2, 3), np.uint8) if k.endswith("images") else np.zeros(1, int)
                                   for k in ("train_images", "train_labels", "train_contexts", "test_images",
                                             "test_labels", "test_contexts", "class_context")})
    fourth = load_builtin(**kw)
    np.testing.assert_array_equal(first.test.images, fourth.test.images)
    # another parameter -> another file
    load_builtin(**{**kw, "context_bias": 0.5})
    assert len(list((tmp_path / "builtin").glob("*.npz"))) == 2


def test_pool_cache_round_trip(tmp_path):
    a = load_pretrain_pool(num_classes=4, images_per_class=2)
    b = load_pretrain_pool(num_classes=4, images_per_class=2)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.contexts, b.contexts)
    assert len(list((tmp_path / "builtin").glob("pool-*.npz"))) == 1


@pytest.mark.parametrize("kw, option", [
    ({"num_classes": 7}, "num_classes"),
    ({"num_classes": 10.0}, "num_classes"),
    ({"num_classes": "400"}, "num_classes"),
    ({"images_per_class": 1}, "images_per_class"),
    ({"context_bias": 1.5}, "context_bias"),
    ({"context_bias": -0.1}, "context_bias"),
    ({"context_bias": float("nan")}, "context_bias"),
    ({"context_bias": True}, "context_bias"),
    ({"image_size": 8}, "image_size"),
    ({"seed": -1}, "seed"),
    ({"seed": True}, "seed"),
])
def test_invalid_arguments(kw, option):
    with pytest.raises(ConfigError, match=rf"^{option} must be .* got ") as info:
        load_builtin(cache=False, **kw)
    assert "\n" not in str(info.value)


def test_invalid_pool_arguments():
    with pytest.raises(ConfigError, match="num_classes"):
        load_pretrain_pool(num_classes=1, cache=False)
    with pytest.raises(ConfigError, match="images_per_class"):
        load_pretrain_pool(images_per_class=0, cache=False)


def test_transforms():
    src = _small()
    x = torch.rand(3, 32, 32)
    ev = src.eval_transform(x)
    assert isinstance(src.eval_transform, BuiltinEvalTransform)
    torch.testing.assert_close(ev, (x - 0.5) / 0.25)
    assert isinstance(src.train_transform, BuiltinTrainTransform)
    torch.manual_seed(0)
    a = src.train_transform(x)
    torch.manual_seed(0)
    b = src.train_transform(x)
    torch.testing.assert_close(a, b)
    assert a.shape == (3, 32, 32)
    outs = torch.stack([src.train_transform(x) for _ in range(20)])
    assert outs.std(0).mean() > 0  # random
    lo, hi = (0 - 0.5) / 0.25, (1 - 0.5) / 0.25
    assert outs.min() >= lo - 1e-6 and outs.max() <= hi + 1e-6
    # translation only, never a mirror image: with zero jitter the output is a shifted crop of x
    t = BuiltinTrainTransform(brightness=0.0, contrast=0.0)
    y = t(x) * 0.25 + 0.5
    padded = torch.nn.functional.pad(x[None], (2, 2, 2, 2), mode="replicate")[0]
    assert any(torch.allclose(y, padded[:, i:i + 32, j:j + 32], atol=1e-6) for i in range(5) for j in range(5))


# --------------------------------------------------------------------------------------------
# The training transform on whole batches (the trainer's fast path for the in-memory dataset)


def _draw_per_image(t: BuiltinTrainTransform, x: torch.Tensor, n: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.stack([t(x) for _ in range(n)])


def _draw_batch(t: BuiltinTrainTransform, x: torch.Tensor, n: int) -> torch.Tensor:
    return t.batch(x.expand(n, *x.shape).contiguous(), torch.Generator().manual_seed(0))


def test_shifted_crops_crop_each_image_at_its_own_shift():
    padded = torch.rand(5, 3, 12, 14)
    shifts = torch.tensor([[0, 0], [4, 4], [1, 3], [3, 0], [2, 1]])
    crops = builtin.shifted_crops(padded, shifts, 8, 10)
    expected = [padded[k, :, i:i + 8, j:j + 10] for k, (i, j) in enumerate(shifts.tolist())]
    assert torch.equal(crops, torch.stack(expected))


def test_batch_augmentation_is_deterministic_per_generator_seed():
    x = torch.from_numpy(_small().train.images[:8]).permute(0, 3, 1, 2).float() / 255
    t = BuiltinTrainTransform()
    a, b = t.batch(x, torch.Generator().manual_seed(3)), t.batch(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, t.batch(x, torch.Generator().manual_seed(4)))
    torch.manual_seed(5)  # the global generator plays no part
    c = t.batch(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, c)


def test_batch_augmentation_with_zero_strengths_is_the_evaluation_transform():
    x = torch.rand(6, 3, 16, 16)
    identity = BuiltinTrainTransform(pad=0, brightness=0.0, contrast=0.0)
    evaluation = BuiltinEvalTransform().batch(x)
    assert torch.equal(evaluation, torch.stack([BuiltinEvalTransform()(v) for v in x]))
    # (x - mean) + mean: equal up to float rounding, on both paths
    torch.testing.assert_close(identity.batch(x, torch.Generator().manual_seed(0)), evaluation, rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.stack([identity(v) for v in x]), evaluation, rtol=0, atol=1e-6)


def test_batch_shifts_have_the_per_image_distribution():
    # a ramp: each of the (2 pad + 1)^2 crops of the padded image is different, so each output names its shift
    h = w = 8
    pad = 2
    ramp = (torch.arange(h * w, dtype=torch.float32).view(1, h, w) / (h * w)).expand(3, h, w)
    t = BuiltinTrainTransform(pad=pad, brightness=0.0, contrast=0.0)
    padded = torch.nn.functional.pad(ramp[None], (pad,) * 4, mode="replicate")[0]
    crops = torch.stack([padded[:, i:i + h, j:j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)])

    def shift_counts(out: torch.Tensor) -> np.ndarray:
        distance = torch.cdist((out * 0.25 + 0.5).flatten(1), crops.flatten(1))  # undo the normalisation
        nearest = distance.min(dim=1)
        assert nearest.values.max() < 1e-4, "every output is a crop of the padded image"
        return np.bincount(nearest.indices.numpy(), minlength=len(crops))

    n = 1000
    per_image, batch = shift_counts(_draw_per_image(t, ramp, n)), shift_counts(_draw_batch(t, ramp, n))
    assert (per_image > 0).all() and (batch > 0).all()  # every shift occurs on both paths
    from scipy.stats import chi2_contingency

    assert chi2_contingency(np.stack([per_image, batch])).pvalue > 1e-3  # one distribution


def test_batch_jitter_has_the_per_image_distribution():
    # two grey levels around 0.5: the output's two levels give each image's brightness b and contrast c
    x = torch.full((3, 4, 4), 0.25)
    x[:, :, 2:] = 0.75
    t = BuiltinTrainTransform(pad=0, brightness=0.1, contrast=0.1)

    def draws(out: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        y = (out * 0.25 + 0.5).double()
        lo, hi = y[:, 0, 0, 0], y[:, 0, 0, 3]
        c = ((hi - lo) / 0.5 - 1) / 0.1
        b = ((hi + lo) / 2 - 0.5) / 0.1
        return b.numpy(), c.numpy()

    from scipy.stats import kstest

    n = 2000
    for out in (_draw_per_image(t, x, n), _draw_batch(t, x, n)):
        b, c = draws(out)
        assert np.all(np.abs(b) <= 1 + 1e-4) and np.all(np.abs(c) <= 1 + 1e-4)
        for v in (b, c):  # each uniform on [-1, 1]
            assert kstest(v, "uniform", args=(-1, 2)).pvalue > 1e-3
        assert abs(np.corrcoef(b, c)[0, 1]) < 0.1  # drawn independently
