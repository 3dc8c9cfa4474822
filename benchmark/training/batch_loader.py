"""Training batches, by the fastest path the training set allows, each batch seeded by (fold seed, batch number).

* Images from files: decoded and augmented in DataLoader worker processes (persistent for the fold,
  two batches prefetched each). Training on a CPU, the workers stack each batch into one of a few
  shared-memory buffers allocated before they start (``BatchSlots``) and hand back only its number,
  labels and indices; the main process copies the batch out and frees the buffer. On a GPU they hand
  each batch over the loader's usual way, which the loader's own thread receives and pins, so that
  the copy to the device overlaps the training step. With the protocol's ``ImageTransform``
  the workers stop at the ``uint8`` pixels and the float conversion and normalisation run once per
  batch where the batch is delivered (on the device for a GPU): float for float the same batch as
  transforming each image in full, with 4x less data between processes.
* Images held in memory whose transform is a ``BatchTransform`` (the built-in dataset): the whole
  batch is indexed and augmented as one tensor in the main process, on the device; workers would only add copying.
* The frozen regime's cached trunk outputs (``ViewSet``): one random view of each sample, indexed in one operation.

The class-balanced batch sampler runs in the main process and hands each batch's indices, with the
batch's number, to the loader. Each batch is augmented under random generators seeded by (fold seed,
batch number) alone, so which worker builds a batch, and how many workers there are (0 included),
never changes its pixels: the same seed gives the same batches and the same model with any ``num_workers``.
"""

from __future__ import annotations

import itertools
import random
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from benchmark.data.base import ArrayImageSet, BatchTransform, FileImageSet, ImageSet
from benchmark.data.batch import Batch
from benchmark.data.batch_slots import BatchSlots
from benchmark.data.loader_workers import resolve_num_workers
from benchmark.data.tensor_sets import ViewSet
from benchmark.data.transforms import ImageTransform

# a loader item: batch number, pixels (None: in its slot), labels, indices
Item = tuple[int, Optional[torch.Tensor], np.ndarray, np.ndarray]


def batch_seed(seed: int, number: int) -> int:
    """The seed of batch ``number`` of a fold seeded ``seed``."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's, numpy's and Python's global generators seeded with ``seed``; the caller's states restored after."""
    with torch.random.fork_rng(devices=[]):
        # the CPU generator alone: torch.manual_seed would also seed the CUDA generators, which
        # fork_rng(devices=[]) does not restore, and costs ~0.4 ms (it formats a stack for CUDA's lazy seeding)
        torch.default_generator.manual_seed(seed)
        state = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])


class SeededBatches(torch.utils.data.Dataset):
    """Item ``(b, idx)``: ``(b, pixels, labels, idx)``, the images ``idx`` transformed with generators seeded by
    ``b``, stacked, with their labels and indices (numpy arrays).

    Given ``slots`` (in a worker process), a batch that fits is stacked into its slot and ``pixels`` is
    ``None``: only the batch number, labels and indices travel back to the main process.
    """

    def __init__(self, images: ImageSet, seed: int, slots: Optional[BatchSlots] = None) -> None:
        self.images, self.seed, self.slots = images, seed, slots

    def __len__(self) -> int:  # the sampler is endless; the length is only nominal
        return len(self.images)

    def __getitem__(self, key: tuple[int, list]) -> Item:
        number, idx = key
        idx = [int(i) for i in idx]
        with seeded(batch_seed(self.seed, number)):
            items = [self.images[i] for i in idx]
        pixels = [item[0] for item in items]
        labels, idx = np.asarray([item[1] for item in items], dtype=np.int64), np.asarray(idx, dtype=np.int64)
        if self.slots is not None and self.slots.fits(pixels):
            self.slots.write(number, pixels)
            return number, None, labels, idx
        # default_collate stacks straight into shared memory in a worker (nothing copied on the way out)
        return number, torch.utils.data.default_collate(pixels), labels, idx


class _Numbered:
    """The batch sampler's index lists, numbered from ``start``: ``(start, idx), (start + 1, idx), ...`` (endless)."""

    def __init__(self, batches: Iterator[list], start: int = 0) -> None:
        self.batches, self.start = batches, start

    def __iter__(self):
        number = self.start
        while True:
            yield number, next(self.batches)
            number += 1


def _as_is(item: Item) -> Item:
    """The DataLoader's collate: the item unchanged (numpy labels and indices are pickled, not put in shared memory)."""
    return item


def _delivered(stream: Iterator[Item], slots: Optional[BatchSlots],
               finish: Optional[Callable[[torch.Tensor], torch.Tensor]], device: torch.device) -> Iterator[Batch]:
    """``stream``'s batches on ``device``, ``finish`` applied to x there. A batch in a slot (slots are made for
    CPU training only) is copied out, by ``finish`` or a clone, and the slot released before the batch is
    handed on. The slots are closed when the stream is."""
    try:
        for number, pixels, labels, idx in stream:
            if pixels is None:
                x = slots.read(number)
                x = finish(x) if finish is not None else x.clone()  # finish makes a new tensor
                slots.release(number)
            else:
                x = pixels.to(device, non_blocking=True)
                x = finish(x) if finish is not None else x
            yield x, torch.as_tensor(labels).to(device), torch.as_tensor(idx).to(device)
    finally:
        if slots is not None:
            slots.close()


def _slots_for(images: ImageSet, first: list, num_workers: int, prefetch: int,
               start: int = 0) -> Optional[BatchSlots]:
    """Slots for batches shaped like the first (``len(first)`` images like its first image), enough that no
    worker waits: one per batch the loader keeps in flight, and two more. ``None`` if shared memory fails."""
    with seeded(0):
        probe = images[int(first[0])][0]
    try:
        return BatchSlots(prefetch * num_workers + 2, (len(first), *probe.shape), probe.dtype, start=start)
    except RuntimeError:  # no shared memory to spare: the loader's usual hand-over
        return None


def image_batches(images: ImageSet, batches: Iterator[list], *, seed: int, num_workers: int,
                  device: torch.device | str = "cpu", prefetch: int = 2, start: int = 0) -> Iterator[Batch]:
    """Endless ``(x, y, idx)`` batches of ``images`` on ``device``, in the order ``batches`` gives their indices.

    ``batches`` must not depend on training as it goes (the loader reads ahead of training);
    methods whose sampler does (Magnet) are given ``num_workers=0``, which reads nothing ahead.
    ``start``: the number of the first batch (a resumed fold's batches go on where they stopped).
    """
    device = torch.device(device)
    finish = None
    if isinstance(images, FileImageSet) and isinstance(images.transform, ImageTransform):
        images, finish = images.with_transform(images.transform.pixels), images.transform.finish
    if num_workers == 0:
        dataset = SeededBatches(images, seed)
        return _delivered((dataset[key] for key in _Numbered(batches, start)), None, finish, device)
    first = next(batches)
    # On a GPU the loader's pin-memory thread receives each batch and pins it, off the training thread, so
    # the copy to the device overlaps the step; on a CPU the batch is used where it lands: in a slot.
    slots = _slots_for(images, first, num_workers, prefetch, start) if device.type == "cpu" else None
    loader = torch.utils.data.DataLoader(
        SeededBatches(images, seed, slots), batch_size=None,
        sampler=_Numbered(itertools.chain([first], batches), start),
        collate_fn=_as_is, num_workers=num_workers, persistent_workers=True, prefetch_factor=prefetch,
        pin_memory=device.type == "cuda",
        # the loader's base seed from its own generator, not the caller's global one (batches are seeded anyway)
        generator=torch.Generator().manual_seed(seed % 2**63))
    return _delivered(iter(loader), slots, finish, device)


def array_batches(images: ArrayImageSet, batches: Iterator[list], *, seed: int,
                  device: torch.device | str = "cpu", start: int = 0) -> Iterator[Batch]:
    """Endless ``(x, y, idx)`` batches of in-memory ``images`` on ``device``, each augmented as one tensor by
    the set's ``BatchTransform`` (none: the pixels in [0, 1]) with a generator seeded per batch."""
    transform = images.transform
    for number, idx in _Numbered(batches, start):
        x = images.rows(idx, device)
        if transform is not None:
            x = transform.batch(x, torch.Generator().manual_seed(batch_seed(seed, number)))
        yield x, torch.as_tensor(images.labels[idx]).to(device), torch.as_tensor(idx).to(device)


def view_batches(views: ViewSet, batches: Iterator[list], rng: np.random.Generator) -> Iterator[Batch]:
    """Endless ``(x, y, idx)`` batches of cached trunk outputs: a random view of each sample, drawn from ``rng``."""
    for idx in batches:
        yield views.batch(idx, rng), torch.as_tensor(views.labels[idx]), torch.as_tensor(idx)


def has_batch_path(images: ImageSet) -> bool:
    """Whether ``images`` are in memory with a transform that augments whole batches (``array_batches``)."""
    return isinstance(images, ArrayImageSet) and (images.transform is None
                                                   or isinstance(images.transform, BatchTransform))


def view_rng(seed: int) -> np.random.Generator:
    """The generator that draws the frozen regime's views of a fold seeded ``seed``."""
    return np.random.default_rng([seed % (2**63), 1])


def training_batches(train_set: ImageSet, batches: Iterator[list], *, seed: int, num_workers: int | str,
                     device: torch.device | str = "cpu", start: int = 0,
                     rng: Optional[np.random.Generator] = None) -> Iterator[Batch]:
    """The fold's ``(x, y, idx)`` batches (see the module docstring for the three paths).

    ``num_workers``: worker processes for images from files, or ``auto`` (``benchmark.data.loader_workers``).
    ``start``: the number of the first batch; ``rng``: the views' generator of cached trunk outputs
    (default ``view_rng(seed)``; a resumed fold passes it in the state it stopped in).
    """
    if isinstance(train_set, ViewSet):
        rng = view_rng(seed) if rng is None else rng
        return (Batch(*b).to(torch.device(device)) for b in view_batches(train_set, batches, rng))
    if has_batch_path(train_set):
        return array_batches(train_set, batches, seed=seed, device=device, start=start)
    return image_batches(train_set, batches, seed=seed, num_workers=resolve_num_workers(num_workers, device),
                         device=device, start=start)
