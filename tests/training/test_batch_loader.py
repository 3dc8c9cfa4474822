"""Training batches: the same batches and the same model with any number of workers; the in-memory fast path."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from benchmark.config import TrainingConfig
from benchmark.data.base import ArrayImageSet, FileImageSet
from benchmark.data.builtin import BuiltinTrainTransform
from benchmark.data.transforms import imagenet_train_transform
from benchmark.methods import MethodContext, get_method
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN
from benchmark.data.batch_slots import BatchSlots
from benchmark.training import batch_loader, trainer
from benchmark.training.batch_loader import (
    batch_seed,
    has_batch_path,
    image_batches,
    seeded,
    training_batches,
)
from benchmark.training.samplers import ClassBalancedBatches


def image_files(tmp_path, n_classes=6, per_class=4, protocol=False):
    """JPEG files of random pixels, ``per_class`` per class, with an augmenting transform: a torchvision
    pipeline, or with ``protocol`` the protocol's (whose workers hand over uint8 pixels)."""
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for c in range(n_classes):
        for i in range(per_class):
            path = tmp_path / f"{c}_{i}.jpg"
            Image.fromarray(rng.integers(0, 255, size=(40, 48, 3), dtype=np.uint8)).save(path)
            paths.append(path)
            labels.append(c)
    augment = T.Compose([T.RandomResizedCrop(32, scale=(0.3, 1.0)), T.RandomHorizontalFlip(), T.ToTensor()])
    return FileImageSet(paths, labels, imagenet_train_transform(32, 36) if protocol else augment)


def take(images, workers, n=5, seed=3):
    batches = ClassBalancedBatches(images.labels, batch_size=8, m_per_class=2, seed=seed)
    stream = image_batches(images, batches, seed=seed, num_workers=workers)
    out = [next(stream) for _ in range(n)]
    del stream
    return out


@pytest.mark.parametrize("protocol", [False, True])
def test_batches_are_the_same_with_0_1_and_2_workers(tmp_path, protocol):
    images = image_files(tmp_path, protocol=protocol)
    serial = take(images, 0)
    for workers in (1, 2):
        for (x0, y0, i0), (x, y, i) in zip(serial, take(images, workers)):
            assert torch.equal(x0, x) and torch.equal(y0, y) and torch.equal(i0, i)
    assert not torch.equal(serial[0][0], take(images, 0, seed=4)[0][0])  # another seed, other batches
    x, y, idx = serial[0]
    assert x.shape == (8, 3, 32, 32) and torch.equal(y, torch.as_tensor(images.labels[idx.numpy()]))


def test_uint8_pixels_finished_per_batch_are_the_images_transformed_one_by_one(tmp_path):
    # the workers stop at uint8 pixels and the batch is converted at once: float for float the same batch
    images = image_files(tmp_path, protocol=True)
    for number, (x, _, idx) in enumerate(take(images, 2, n=3)):
        with seeded(batch_seed(3, number)):
            expected = torch.stack([images[i][0] for i in idx.tolist()])
        assert x.dtype == torch.float32 and torch.equal(x, expected)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_callers_random_state_is_untouched(tmp_path, workers):
    images = image_files(tmp_path)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    take(images, workers, n=2)
    assert torch.equal(torch.rand(3), expected)


def test_workers_write_fitting_batches_into_slots(tmp_path):
    images = image_files(tmp_path, protocol=True)
    pixels = images.with_transform(images.transform.pixels)
    first = [0, 1, 4, 5, 8, 9, 12, 13]
    slots = batch_loader._slots_for(pixels, first, num_workers=2, prefetch=2)
    assert slots.count == 6 and slots.shape == (8, 3, 32, 32) and slots.dtype == torch.uint8
    number, x, y, idx = batch_loader.SeededBatches(pixels, 3, slots)[(1, first)]
    assert number == 1 and x is None and idx.tolist() == first and y.tolist() == images.labels[first].tolist()
    with seeded(batch_seed(3, 1)):
        expected = torch.stack([pixels[i][0] for i in first])
    assert torch.equal(slots.read(1), expected)
    assert batch_loader.SeededBatches(pixels, 3, slots)[(8, first[:6])][1].shape == (6, 3, 32, 32)  # no fit


def test_with_fewer_slots_than_batches_in_flight_workers_wait_their_turn(tmp_path, monkeypatch):
    images = image_files(tmp_path, protocol=True)
    serial = take(images, 0, n=6)
    made = []

    def one_slot(images, first, num_workers, prefetch, start=0):
        made.append(BatchSlots(1, (len(first), *images[int(first[0])][0].shape)))
        return made[-1]

    monkeypatch.setattr(batch_loader, "_slots_for", one_slot)
    batches = ClassBalancedBatches(images.labels, batch_size=8, m_per_class=2, seed=3)
    stream = image_batches(images, batches, seed=3, num_workers=2)
    for x0, y0, i0 in serial:
        x, y, i = next(stream)
        assert torch.equal(x0, x) and torch.equal(y0, y) and torch.equal(i0, i)
    start = time.perf_counter()
    del stream  # the workers waiting for the slot are told to stop, not killed after a timeout
    assert made[0].tickets.tolist() == [6] and int(made[0].closed[0]) == 1
    assert time.perf_counter() - start < 4.0


class Uneven:
    """Batches of 8, then 6, then 8 ... indices (the slots fit only the first size)."""

    def __init__(self, labels):
        self.inner, self.n = ClassBalancedBatches(labels, batch_size=8, m_per_class=2, seed=3), 0

    def __iter__(self):
        return self

    def __next__(self):
        self.n += 1
        idx = next(self.inner)
        return idx if self.n % 2 else idx[:6]


def test_batches_that_do_not_fit_the_slots_come_the_usual_way(tmp_path):
    images = image_files(tmp_path, protocol=True)
    serial = image_batches(images, Uneven(images.labels), seed=3, num_workers=0)
    parallel = image_batches(images, Uneven(images.labels), seed=3, num_workers=2)
    for _ in range(4):
        (x0, y0, i0), (x, y, i) = next(serial), next(parallel)
        assert torch.equal(x0, x) and torch.equal(y0, y) and torch.equal(i0, i)
    assert [len(next(parallel)[0]) for _ in range(2)] == [8, 6]


def test_same_seed_same_model_with_0_and_2_workers(tmp_path):
    images = image_files(tmp_path, protocol=True)
    params = {}

    def train(workers):
        cfg = TrainingConfig(batch_size=8, m_per_class=2, iterations_per_epoch=3, max_epochs=2, val_interval=1,
                             patience=5, optimizer="adam", lr_trunk=1e-3, lr_embedder=1e-3, num_workers=workers)
        torch.manual_seed(0)
        model = EmbeddingModel(SmallCNN(width=4), 8)
        method = get_method("contrastive").create(
            MethodContext(num_classes=6, embedding_dim=8, device=torch.device("cpu")),
            dict(get_method("contrastive").defaults, **params))
        model, result = trainer.train_fold(model=model, method=method, train_set=images, train_eval_set=images,
                                           val_set=images.with_transform(T.Compose([T.Resize(32), T.CenterCrop(32),
                                                                                    T.ToTensor()])),
                                           cfg=cfg, device=torch.device("cpu"), seed=7, m_per_class=2,
                                           progress=False)
        return model.state_dict(), result.curve

    (a, curve_a), (b, curve_b) = train(0), train(2)
    assert curve_a == curve_b
    assert all(torch.equal(a[k], b[k]) for k in a)


def in_memory_set(n_classes=6, per_class=4):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_classes * per_class, 16, 16, 3), dtype=np.uint8)
    return ArrayImageSet(images, np.repeat(np.arange(n_classes), per_class), BuiltinTrainTransform())


def take_in_memory(images, seed, n=4):
    stream = training_batches(images, ClassBalancedBatches(images.labels, batch_size=8, m_per_class=2, seed=seed),
                              seed=seed, num_workers=2)
    return [next(stream) for _ in range(n)]


def test_in_memory_batches_are_augmented_as_one_tensor_seeded_per_batch():
    images = in_memory_set()
    torch.manual_seed(0)
    before = torch.rand(1)
    batches = take_in_memory(images, seed=3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, take_in_memory(images, seed=3)))  # same seed
    assert not torch.equal(batches[0][0], take_in_memory(images, seed=4)[0][0])                 # another seed
    for number, (x, y, idx) in enumerate(batches):
        assert x.shape == (8, 3, 16, 16) and torch.equal(y, torch.as_tensor(images.labels[idx.numpy()]))
        generator = torch.Generator().manual_seed(batch_seed(3, number))
        assert torch.equal(x, images.transform.batch(images.rows(idx.tolist()), generator))
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), before)  # the global generator is not used


def test_rows_are_the_images_loaded_one_by_one():
    images = in_memory_set()
    assert torch.equal(images.rows([5, 0, 9]), torch.stack([images.load(i) for i in (5, 0, 9)]))


def test_the_fast_path_is_taken_for_in_memory_sets_with_a_batch_transform(tmp_path):
    images = in_memory_set()
    assert has_batch_path(images) and has_batch_path(images.with_transform(None))
    assert not has_batch_path(images.with_transform(lambda x: x))  # a per-image transform: one image at a time
    assert not has_batch_path(image_files(tmp_path, protocol=True))
