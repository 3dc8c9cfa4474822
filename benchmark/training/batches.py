"""The fold's training batches: the method's own sampler or the class-balanced one, through the batch loader.

A method's own sampler may follow training as it goes (Magnet's clusters), so nothing may read ahead
of it: its batches are loaded in the main process (no workers).
"""

from __future__ import annotations

from typing import Iterator

import torch

from benchmark.data.base import ImageSet
from benchmark.data.batch import Batch
from benchmark.methods.base import Method
from benchmark.training.batch_loader import training_batches
from benchmark.training.samplers import ClassBalancedBatches


def fold_batches(method: Method, train_set: ImageSet, *, batch_size: int, m_per_class: int, seed: int,
                 num_workers: int | str, device: torch.device) -> Iterator[Batch]:
    """The fold's endless batches, delivered on ``device`` (through pinned memory from loader workers)."""
    labels = train_set.labels
    sampler = method.batch_sampler(labels, batch_size=batch_size, m_per_class=m_per_class, seed=seed)
    own_sampler = sampler is not None
    if sampler is None:
        sampler = ClassBalancedBatches(labels, batch_size=batch_size, m_per_class=m_per_class, seed=seed)
    stream = training_batches(train_set, sampler, seed=seed, num_workers=0 if own_sampler else num_workers,
                              device=device)
    return (Batch(*tensors) for tensors in stream)
