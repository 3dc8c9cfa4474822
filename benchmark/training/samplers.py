"""Class-balanced batches: each batch holds ``batch_size / m`` classes with ``m`` images each.

Written here rather than taken from pytorch-metric-learning's ``MPerClassSampler`` because that
sampler draws from a module-global numpy generator; this one owns a seeded generator, so every
fold's batch sequence is a pure function of its seed (reproducible runs), and its state can be saved and
loaded (``state_dict``) to resume a fold.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from benchmark.errors import ConfigError


class ClassBalancedBatches:
    """Endless iterator of index batches with ``m_per_class`` samples from each of ``batch_size // m`` classes.

    Classes are visited in a shuffled order (a new permutation after each pass); a class with
    fewer than ``m`` images is sampled with replacement.
    """

    def __init__(self, labels: Sequence[int], *, batch_size: int, m_per_class: int, seed: int) -> None:
        labels = np.asarray(labels)
        if m_per_class < 1 or batch_size % m_per_class:
            raise ConfigError(f"batch_size ({batch_size}) must be a multiple of m_per_class ({m_per_class})")
        self.classes, inverse = np.unique(labels, return_inverse=True)
        self.per_class = batch_size // m_per_class
        if len(self.classes) < self.per_class:
            raise ConfigError(f"a batch of {batch_size} with m_per_class={m_per_class} needs "
                              f"{self.per_class} classes, the training set has {len(self.classes)}")
        self.members = [np.flatnonzero(inverse == c) for c in range(len(self.classes))]
        self.m = m_per_class
        self.rng = np.random.default_rng(seed)
        self._order: list[int] = []

    def __iter__(self) -> Iterator[list[int]]:
        return self

    def __next__(self) -> list[int]:
        if len(self._order) < self.per_class:
            # the next pass, with the classes left over from this pass moved to its end, so that
            # the batch that straddles the two passes never holds a class twice
            left = set(self._order)
            perm = self.rng.permutation(len(self.classes)).tolist()
            self._order += [c for c in perm if c not in left] + [c for c in perm if c in left]
        chosen, self._order = self._order[: self.per_class], self._order[self.per_class:]
        batch: list[int] = []
        for c in chosen:
            members = self.members[c]
            take = self.rng.choice(members, size=self.m, replace=len(members) < self.m)
            batch.extend(int(i) for i in take)
        return batch

    def state_dict(self) -> dict:
        """What the next batches depend on: the generator's state and the rest of the current pass."""
        return {"rng": self.rng.bit_generator.state, "order": list(self._order)}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._order = list(state["order"])
