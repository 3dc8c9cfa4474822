"""Labelled tensors in memory: cached trunk outputs and precomputed features, as the frozen regime reads them.

``TensorSet`` is an ``ImageSet`` whose items are rows of one tensor (``N x C x H x W``): the
evaluation-transform trunk output of every image, or a ``features`` dataset's vectors (``N x D x 1 x 1``).
It has no transform (``with_transform`` returns it unchanged) and ``rows(indices)`` reads a batch with
one indexing operation. ``ViewSet`` holds ``V`` augmented views of each training sample
(``N x V x C x H x W``); ``batch(indices, rng)`` picks one random view per sample.
"""

from __future__ import annotations

import hashlib
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from benchmark.data.base import ImageSet, Transform
from benchmark.errors import DatasetError


def _as_index(indices: Sequence[int]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(indices, dtype=np.int64))


class TensorSet(ImageSet):
    """``values[i]`` with label ``labels[i]``; ``self[i]`` is ``(values[i], label, i)``."""

    def __init__(self, values: torch.Tensor, labels: Sequence[int]) -> None:
        if len(values) != len(labels):
            raise DatasetError(f"{len(values)} rows of values but {len(labels)} labels")
        self.values = values
        self.labels = np.asarray(labels, dtype=np.int64)

    def __getitem__(self, i: int):
        return self.values[i], int(self.labels[i]), i

    def rows(self, indices: Sequence[int]) -> torch.Tensor:
        return self.values[_as_index(indices)]

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """The values in order, ``batch_size`` rows at a time (what ``embed`` reads)."""
        return iter(self.values.split(batch_size))

    def subset(self, indices: Sequence[int]) -> "TensorSet":
        idx = _as_index(indices)
        return TensorSet(self.values[idx], self.labels[idx.numpy()])

    def with_transform(self, transform: Optional[Transform]) -> "TensorSet":
        return self

    def fingerprint(self) -> str:
        h = hashlib.sha256(str(tuple(self.values.shape)).encode())
        h.update(self.values.detach().cpu().contiguous().numpy().tobytes())
        h.update(self.labels.tobytes())
        return h.hexdigest()


class ViewSet(TensorSet):
    """``V`` views per sample: ``values`` is ``N x V x ...``; ``self[i]`` is the first view."""

    def __getitem__(self, i: int):
        return self.values[i, 0], int(self.labels[i]), i

    def rows(self, indices: Sequence[int]) -> torch.Tensor:
        """The first view of each sample of ``indices`` (what ``self[i]`` gives)."""
        return self.values[_as_index(indices), 0]

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        return iter(self.values[:, 0].split(batch_size))

    @property
    def num_views(self) -> int:
        return int(self.values.shape[1])

    def batch(self, indices: Sequence[int], rng: np.random.Generator) -> torch.Tensor:
        """One uniformly random view of each sample of ``indices`` (``B x ...``)."""
        idx = _as_index(indices)
        views = torch.as_tensor(rng.integers(0, self.num_views, size=len(idx)))
        return self.values[idx, views]

    def subset(self, indices: Sequence[int]) -> "ViewSet":
        idx = _as_index(indices)
        return ViewSet(self.values[idx], self.labels[idx.numpy()])
