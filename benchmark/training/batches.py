"""The fold's training batches: the method's own sampler or the class-balanced one, through the batch loader.

A method's own sampler may follow training as it goes (Magnet's clusters), so nothing may read ahead
of it: its batches are loaded in the main process (no workers).

``FoldBatches`` counts the batches the trainer took and can say what the rest of the stream depends on
(``state_dict``): the number of the next batch (each batch's augmentation is seeded by it), the
class-balanced sampler's state before it drew that batch (loader workers read ahead of training, so
the sampler's state is recorded before each draw and kept until the batch is taken) and the frozen
regime's view generator. A fold resumed from that state gets the very batches it would have had.
A method's own sampler is saved with the method instead (``benchmark.training.resume``).
"""

from __future__ import annotations

from collections import deque
from typing import Iterator, Optional

import torch

from benchmark.data.base import ImageSet
from benchmark.data.batch import Batch
from benchmark.data.tensor_sets import ViewSet
from benchmark.methods.base import Method
from benchmark.training.batch_loader import training_batches, view_rng
from benchmark.training.samplers import ClassBalancedBatches


class FoldBatches:
    """Endless ``Batch``es of a fold; ``state_dict()`` after any batch, ``close()`` ends the loader's workers."""

    def __init__(self, method: Method, train_set: ImageSet, *, batch_size: int, m_per_class: int, seed: int,
                 num_workers: int | str, device: torch.device, state: Optional[dict] = None,
                 sampler: Optional[Iterator[list[int]]] = None) -> None:
        labels = train_set.labels
        if sampler is None:  # a resumed fold brings its method's own sampler (saved with the method)
            sampler = method.batch_sampler(labels, batch_size=batch_size, m_per_class=m_per_class, seed=seed)
        self.own_sampler = sampler is not None
        if sampler is None:
            sampler = ClassBalancedBatches(labels, batch_size=batch_size, m_per_class=m_per_class, seed=seed)
        self.sampler = sampler
        self.taken = 0
        self.rng = view_rng(seed) if isinstance(train_set, ViewSet) else None
        if state is not None:
            self.taken = int(state["taken"])
            if state.get("sampler") is not None:
                sampler.load_state_dict(state["sampler"])
            if self.rng is not None:
                self.rng.bit_generator.state = state["view_rng"]
        self._drawn = self.taken
        #: (batch number, the sampler's state before drawing it), for the batches drawn but not yet taken.
        self._before: deque = deque()
        stream = training_batches(train_set, self._recorded(), seed=seed,
                                  num_workers=0 if self.own_sampler else num_workers, device=device,
                                  start=self.taken, rng=self.rng)
        self._stream = (Batch(*tensors) for tensors in stream)

    def _recorded(self) -> Iterator[list[int]]:
        savable = hasattr(self.sampler, "state_dict") and not self.own_sampler
        while True:
            if savable:
                self._before.append((self._drawn, self.sampler.state_dict()))
            self._drawn += 1
            yield next(self.sampler)

    def __iter__(self) -> "FoldBatches":
        return self

    def __next__(self) -> Batch:
        batch = next(self._stream)
        self.taken += 1
        while self._before and self._before[0][0] < self.taken:
            self._before.popleft()
        return batch

    def state_dict(self) -> dict:
        """What the batches after the ones taken so far depend on (see the module docstring)."""
        sampler = None
        if not self.own_sampler:
            ahead = [s for n, s in self._before if n == self.taken]
            sampler = ahead[0] if ahead else self.sampler.state_dict()
        return {"taken": self.taken, "sampler": sampler,
                "view_rng": self.rng.bit_generator.state if self.rng is not None else None}

    def close(self) -> None:
        self._stream.close()
        self._stream = iter(())


def fold_batches(method: Method, train_set: ImageSet, *, batch_size: int, m_per_class: int, seed: int,
                 num_workers: int | str, device: torch.device, state: Optional[dict] = None,
                 sampler: Optional[Iterator[list[int]]] = None) -> FoldBatches:
    """The fold's endless batches, delivered on ``device`` (through pinned memory from loader workers);
    ``state`` (a ``FoldBatches.state_dict()``) and the method's own ``sampler`` resume a fold."""
    return FoldBatches(method, train_set, batch_size=batch_size, m_per_class=m_per_class, seed=seed,
                       num_workers=num_workers, device=device, state=state, sampler=sampler)

