"""A dataset's second modality: items with their own labels over the same classes (cross-modal retrieval).

A loader that pairs its samples with a second modality (the built-in dataset's class descriptions, CUB's
attribute vectors, a paired-features file) returns its usual ``DataSource`` for modality A and puts a
``SecondModality`` under ``info[PAIRED]``: modality B's vectors of the training classes (``train``) and of
the test classes (``test``), each a ``TensorSet`` of ``M x D`` values. ``info`` travels through the frozen
regime unchanged, so the two-tower protocol (``benchmark.protocol.cross_modal``) finds it on the prepared
source. B's items carry the same class ids as A's; every class of A has B items and the reverse
(``check_same_classes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from benchmark.data.tensor_sets import TensorSet
from benchmark.errors import DatasetError

#: The ``DataSource.info`` key holding the ``SecondModality``.
PAIRED = "paired"


@dataclass
class SecondModality:
    """Modality B of a paired dataset: vectors of the training and of the test classes."""

    #: The modalities' names, A's (the ``DataSource``'s samples) and B's (e.g. ``image``, ``description``).
    name_a: str
    name_b: str
    train: TensorSet
    test: TensorSet

    @property
    def dim(self) -> int:
        return int(self.train.values.shape[1])

    def directions(self) -> tuple[str, str]:
        """The two retrieval directions' names: ``a-to-b`` (A queries, B references) and ``b-to-a``."""
        return f"{self.name_a}-to-{self.name_b}", f"{self.name_b}-to-{self.name_a}"


def paired_of(source: Any) -> Optional[SecondModality]:
    """The second modality of a ``DataSource`` (None for a single-modality dataset)."""
    return getattr(source, "info", {}).get(PAIRED)


def check_same_classes(labels_a: np.ndarray, labels_b: np.ndarray, where: str, side: str,
                       names: tuple[str, str] = ("A", "B")) -> None:
    """``DatasetError`` (one line, naming ``where``) unless A and B hold exactly the same classes on ``side``."""
    a, b = set(np.unique(labels_a).tolist()), set(np.unique(labels_b).tolist())
    if a != b:
        only_a, only_b = sorted(a - b), sorted(b - a)
        parts = []
        if only_a:
            parts.append(f"{len(only_a)} class(es) only in {names[0]}, e.g. {only_a[:5]}")
        if only_b:
            parts.append(f"{len(only_b)} class(es) only in {names[1]}, e.g. {only_b[:5]}")
        which = f"{side} classes" if side else "classes"
        raise DatasetError(f"{where}: the {which} of the two modalities differ ({'; '.join(parts)}); expected every "
                           f"class in both")


def is_paired_entry(name: object, options: object) -> bool:
    """Whether a ``datasets[i]`` entry (its name and options) is a paired (cross-modal) dataset, from the
    config alone: a ``paired_features`` file, or a dataset given the option ``second_modality``."""
    return name == "paired_features" or (isinstance(options, dict) and options.get("second_modality") is not None)
