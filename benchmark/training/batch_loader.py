"""Training batches: images through a torch DataLoader (decoded and augmented in worker processes),
or, in the frozen regime, one random cached view of each sample, indexed in one operation.

The class-balanced batch sampler runs in the main process and hands each batch's indices, with the
batch's number, to the loader. Each batch is augmented under random generators seeded by (fold seed,
batch number) alone, so which worker builds a batch, and how many workers there are (0 included),
never changes its pixels: the same seed gives the same batches and the same model with any
``num_workers``. Workers are persistent for the fold and prefetch two batches each; host memory is
pinned when training on a GPU.
"""

from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch

from benchmark.data.base import ImageSet
from benchmark.data.batch import gather
from benchmark.data.tensor_sets import ViewSet


class SeededBatches(torch.utils.data.Dataset):
    """Item ``(b, idx)``: the transformed images ``idx`` and their labels, augmented with generators seeded by ``b``."""

    def __init__(self, images: ImageSet, seed: int) -> None:
        self.images, self.seed = images, seed

    def __len__(self) -> int:  # the sampler is endless; the length is only nominal
        return len(self.images)

    def __getitem__(self, key: tuple[int, list]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        number, idx = key
        seed = int(np.random.SeedSequence([self.seed, number]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):  # the caller's generators are left as they were
            # the CPU generator alone: torch.manual_seed would also seed the CUDA generators, which
            # fork_rng(devices=[]) does not restore, and costs ~0.4 ms (it formats a stack for CUDA's lazy seeding)
            torch.default_generator.manual_seed(seed)
            state = random.getstate(), np.random.get_state()
            random.seed(seed)
            np.random.seed(seed)
            try:
                return gather(self.images, idx)
            finally:
                random.setstate(state[0])
                np.random.set_state(state[1])


class _Numbered:
    """The batch sampler's index lists, numbered: ``(0, idx0), (1, idx1), ...`` (endless)."""

    def __init__(self, batches: Iterator[list]) -> None:
        self.batches = batches

    def __iter__(self):
        number = 0
        while True:
            yield number, next(self.batches)
            number += 1


def image_batches(images: ImageSet, batches: Iterator[list], *, seed: int, num_workers: int,
                  pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless ``(x, y, idx)`` batches of ``images`` in the order ``batches`` gives their indices.

    ``batches`` must not depend on training as it goes (the loader reads ahead of training);
    methods whose sampler does (Magnet) are given ``num_workers=0``, which reads nothing ahead.
    """
    dataset = SeededBatches(images, seed)
    if num_workers == 0:
        return (dataset[key] for key in _Numbered(batches))
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, sampler=_Numbered(batches),
                                         num_workers=num_workers, persistent_workers=True, prefetch_factor=2,
                                         pin_memory=pin_memory)
    return iter(loader)


def view_batches(views: ViewSet, batches: Iterator[list],
                 rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless ``(x, y, idx)`` batches of cached trunk outputs: a random view of each sample, drawn from ``rng``."""
    for idx in batches:
        yield views.batch(idx, rng), torch.as_tensor(views.labels[idx]), torch.as_tensor(idx)


def training_batches(train_set: ImageSet, batches: Iterator[list], *, seed: int, num_workers: int,
                     pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The fold's ``(x, y, idx)`` batches: cached views for a ``ViewSet``, else loaded and augmented images."""
    if isinstance(train_set, ViewSet):
        return view_batches(train_set, batches, np.random.default_rng([seed % (2**63), 1]))
    return image_batches(train_set, batches, seed=seed, num_workers=num_workers, pin_memory=pin_memory)
