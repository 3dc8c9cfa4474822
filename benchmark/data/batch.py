"""Assembling a batch from an image set: the items' tensors stacked, their labels and indices; and moving it.

``gather(images, indices)`` puts a batch together from items (one indexing operation for cached tensors):
the methods that visit the training images themselves (DCML's environment inference) and the trunk cache
use it. (The trainer's batches from image files are stacked by the loader's workers, straight into shared
memory: ``benchmark.training.batch_loader``.) ``Batch.to`` moves a batch to the device, its images in the
training step's memory layout.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from benchmark.data.base import ImageSet
from benchmark.data.tensor_sets import TensorSet


class Batch(NamedTuple):
    """Images (``B x ...``), their labels and their indices in the image set."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor

    def to(self, device: torch.device, memory_format: torch.memory_format = torch.preserve_format) -> "Batch":
        """The batch on ``device``; 4-d images in ``memory_format`` (channels-last for the CUDA step)."""
        images = self.images.to(device, non_blocking=True)
        if memory_format is not torch.preserve_format and images.dim() == 4:
            images = images.contiguous(memory_format=memory_format)
        return Batch(images, self.labels.to(device, non_blocking=True), self.indices.to(device, non_blocking=True))


def gather(images: ImageSet, indices: Sequence[int]) -> Batch:
    """The items ``indices`` of ``images`` as one batch (rows of the tensor for a ``TensorSet``)."""
    idx = [int(i) for i in indices]
    if isinstance(images, TensorSet):
        return Batch(images.rows(idx), torch.as_tensor(images.labels[idx]), torch.as_tensor(idx))
    items = [images[i] for i in idx]
    pixels = torch.utils.data.default_collate([it[0] for it in items])
    return Batch(pixels, torch.as_tensor([it[1] for it in items]), torch.as_tensor(idx))
