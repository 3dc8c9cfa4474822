"""Assembling a batch from any image set, and moving it to the device in the step's layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.data.base import ArrayImageSet
from benchmark.data.batch import Batch, gather
from benchmark.data.tensor_sets import TensorSet, ViewSet

LABELS = np.array([5, 5, 7, 7, 9, 9])


def image_sets():
    rng = np.random.default_rng(0)
    values = torch.from_numpy(rng.normal(size=(6, 3, 2, 4, 4)).astype(np.float32))
    images = rng.integers(0, 255, size=(6, 8, 8, 3), dtype=np.uint8)
    return {"array": ArrayImageSet(images, LABELS, lambda x: x * 2 - 1),  # a transform: items are transformed
            "tensor": TensorSet(values[:, 0].clone(), LABELS),
            "views": ViewSet(values.clone(), LABELS)}


@pytest.mark.parametrize("kind", ["array", "tensor", "views"])
def test_gather_stacks_what_the_items_are(kind):
    images = image_sets()[kind]
    idx = [4, 0, np.int64(3), 3]
    batch = gather(images, idx)
    assert isinstance(batch, Batch)
    assert torch.equal(batch.images, torch.stack([images[int(i)][0] for i in idx]))  # a view set: the first view
    assert batch.labels.tolist() == [9, 5, 7, 7] and batch.labels.dtype == torch.int64
    assert batch.indices.tolist() == [4, 0, 3, 3] and batch.indices.dtype == torch.int64


def test_to_puts_images_in_the_memory_format_and_leaves_other_tensors():
    batch = gather(image_sets()["array"], [0, 1, 2])
    moved = batch.to(torch.device("cpu"), torch.channels_last)
    assert moved.images.is_contiguous(memory_format=torch.channels_last)
    assert not batch.images.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(moved.images, batch.images) and torch.equal(moved.labels, batch.labels)
    flat = Batch(torch.zeros(3, 16), batch.labels, batch.indices).to(torch.device("cpu"), torch.channels_last)
    assert flat.images.shape == (3, 16)  # only 4-d images have a channels-last layout
    assert batch.to(torch.device("cpu")).images is batch.images  # the default keeps the layout (and the tensor)
