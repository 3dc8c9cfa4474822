"""The protocol's units on a paired (cross-modal) dataset: two-tower models, trained and tested per fold.

``Workbench`` calls in here when a prepared dataset has a second modality (``benchmark.data.paired``):
``paired_folds`` splits modality B by the folds of modality A's classes (class-disjoint like A's);
``two_tower`` puts a ``VectorTower`` (``model.tower_hidden``) beside a fold's usual model; ``train_paired_fold``
trains one fold with the method's cross-modal mode (``benchmark.methods.cross_modal``); ``evaluate_paired``
returns the test metrics of both retrieval directions and the zero-shot accuracy, separated and concatenated,
as ``{DIRECTIONS: {direction: {embedding: {metric: value}}}}`` (``result_parts`` turns that into one result
block per direction, the dataset named ``<dataset>.<a>-to-<b>``). The search value of a fold is the mean of
both directions' validation MAP@R; the "Pretrained" row is the untrained two-tower model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from benchmark.config import BenchmarkConfig
from benchmark.data.paired import SecondModality, check_same_classes, paired_of
from benchmark.data.tensor_sets import TensorSet
from benchmark.evaluation.cross_modal import evaluate_two_towers
from benchmark.methods.base import Method
from benchmark.methods.cross_modal import cross_modal_loss
from benchmark.methods.registry import MethodSpec
from benchmark.models.two_tower import TwoTowerModel, VectorTower
from benchmark.protocol.seeds import derive_seed
from benchmark.training.cross_modal import train_two_tower_fold
from benchmark.training.trainer import FoldResult

#: The key of a cross-modal unit's test results (``{DIRECTIONS: {direction: {embedding: metrics}}}``).
DIRECTIONS = "directions"


@dataclass
class PairedFold:
    """Modality B of one fold: training items (labels mapped like A's to 0..C-1) and validation items."""

    train: TensorSet
    val: TensorSet


@dataclass
class PairedData:
    second: SecondModality
    folds: list[PairedFold]


@dataclass
class PairedTest:
    """A paired dataset's test evaluation before it is scored: its two-tower fold models, which
    ``evaluate_paired`` embeds and scores in both directions (``--save`` does not keep paired runs yet)."""

    models: list


def paired_folds(source, splits, where: str) -> Optional[PairedData]:
    """Modality B split by the folds of ``splits`` (None for a single-modality source)."""
    second = paired_of(source)
    if second is None:
        return None
    check_same_classes(source.train.labels, second.train.labels, where, "training")
    check_same_classes(source.test.labels, second.test.labels, where, "test")
    folds = []
    for fold in splits.folds:
        labels = second.train.labels
        train = second.train.subset(np.flatnonzero(np.isin(labels, fold.train_classes)))
        train.labels = np.searchsorted(np.sort(fold.train_classes), train.labels).astype(np.int64)
        val = second.train.subset(np.flatnonzero(np.isin(labels, fold.val_classes)))
        folds.append(PairedFold(train, val))
    return PairedData(second, folds)


def two_tower(model: torch.nn.Module, paired: PairedData, cfg: BenchmarkConfig, seed: int) -> TwoTowerModel:
    """``model`` (tower A) beside a new vector tower for modality B, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "tower_b"))
        tower_b = VectorTower(paired.second.dim, cfg.model.embedding_dim, cfg.model.tower_hidden)
    return TwoTowerModel(model, tower_b)


def train_paired_fold(paired: PairedData, i: int, *, model: torch.nn.Module, spec: MethodSpec, method: Method,
                      fold, cfg: BenchmarkConfig, fold_cfg, device: torch.device, seed: int, m_per_class: int,
                      desc: str, progress: bool, heartbeat: Optional[Callable[[], None]],
                      on_validation: Optional[Callable[[int, int, float], None]]) -> tuple[TwoTowerModel, FoldResult]:
    """Fold ``i`` of a paired dataset: ``model`` (tower A) with a new tower B, trained with ``method``'s
    cross-modal mode on A's ``fold`` and B's fold ``i``."""
    b = paired.folds[i]
    return train_two_tower_fold(model=two_tower(model, paired, cfg, seed), loss=cross_modal_loss(spec, method),
                                train_a=fold.train, train_b=b.train, val_a=fold.val, val_b=b.val, cfg=fold_cfg,
                                device=device, seed=seed, m_per_class=m_per_class, warmup_epochs=spec.warmup_epochs,
                                desc=desc, progress=progress, heartbeat=heartbeat, on_validation=on_validation)


def evaluate_paired(models: list, source, paired: PairedData, *, device: torch.device, recall_at, batch_size: int,
                    ) -> dict:
    """``{DIRECTIONS: {direction: {fold{i} | concatenated: metrics}}}`` on the test classes."""
    return {DIRECTIONS: evaluate_two_towers(models, source.test, paired.second, device=device, recall_at=recall_at,
                                            batch_size=batch_size)}


def direction_dataset(dataset: str, direction: str) -> str:
    """The ``dataset`` value of one direction's results: ``<dataset>.<a>-to-<b>``."""
    return f"{dataset}.{direction}"


def paired_directions(datasets) -> dict[str, tuple[str, str]]:
    """``{dataset: (a-to-b name, b-to-a name)}`` for the datasets of ``datasets`` (result names) that are the
    two directions of one paired dataset (``direction_dataset``'s names, both present)."""
    names = {str(d) for d in datasets}
    out = {}
    for name in sorted(names):
        key, _, direction = name.rpartition(".")
        a, sep, b = direction.partition("-to-")
        if key and sep and a and b and a < b and direction_dataset(key, f"{b}-to-{a}") in names:
            out[key] = (name, direction_dataset(key, f"{b}-to-{a}"))
    return out


def result_parts(dataset: str, test: dict) -> list[tuple[str, dict]]:
    """``[(dataset name, {embedding: metrics})]``: one part per direction of a cross-modal unit's test results,
    else the results as they are."""
    if DIRECTIONS not in test:
        return [(dataset, test)]
    return [(direction_dataset(dataset, d), t) for d, t in test[DIRECTIONS].items()]


def headline_map_at_r(test: dict) -> float:
    """A unit's test MAP@R for its summary line: the concatenation's (else fold 0's); a cross-modal unit's is the
    mean over its directions."""
    return float(np.mean([part.get("concatenated", part.get("fold0", {})).get("map_at_r", float("nan"))
                          for _, part in result_parts("", test)]))

