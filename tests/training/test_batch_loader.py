"""Training batches through the DataLoader: the same batches and the same model with any number of workers."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from benchmark.config import TrainingConfig
from benchmark.data.base import FileImageSet
from benchmark.methods import MethodContext, get_method
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN
from benchmark.training import trainer
from benchmark.training.batch_loader import image_batches
from benchmark.training.samplers import ClassBalancedBatches


def image_files(tmp_path, n_classes=6, per_class=4):
    """JPEG files of random pixels, ``per_class`` per class, with an augmenting transform."""
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for c in range(n_classes):
        for i in range(per_class):
            path = tmp_path / f"{c}_{i}.jpg"
            Image.fromarray(rng.integers(0, 255, size=(40, 48, 3), dtype=np.uint8)).save(path)
            paths.append(path)
            labels.append(c)
    augment = T.Compose([T.RandomResizedCrop(32, scale=(0.3, 1.0)), T.RandomHorizontalFlip(), T.ToTensor()])
    return FileImageSet(paths, labels, augment)


def take(images, workers, n=5, seed=3):
    batches = ClassBalancedBatches(images.labels, batch_size=8, m_per_class=2, seed=seed)
    stream = image_batches(images, batches, seed=seed, num_workers=workers)
    out = [next(stream) for _ in range(n)]
    del stream
    return out


def test_batches_are_the_same_with_0_1_and_2_workers(tmp_path):
    images = image_files(tmp_path)
    serial = take(images, 0)
    for workers in (1, 2):
        for (x0, y0, i0), (x, y, i) in zip(serial, take(images, workers)):
            assert torch.equal(x0, x) and torch.equal(y0, y) and torch.equal(i0, i)
    assert not torch.equal(serial[0][0], take(images, 0, seed=4)[0][0])  # another seed, other batches
    x, y, idx = serial[0]
    assert x.shape == (8, 3, 32, 32) and torch.equal(y, torch.as_tensor(images.labels[idx.numpy()]))


def test_the_callers_random_state_is_untouched(tmp_path):
    images = image_files(tmp_path)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    take(images, 0, n=2)
    assert torch.equal(torch.rand(3), expected)


def test_same_seed_same_model_with_0_and_2_workers(tmp_path):
    images = image_files(tmp_path)
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
