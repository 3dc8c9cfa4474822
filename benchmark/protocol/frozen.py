"""A dataset prepared for the frozen regime: cached trunk outputs in place of images, and its model factory.

``prepare_frozen`` turns an image ``DataSource`` into one whose sets are ``TensorSet`` s of the frozen
encoder's outputs under the evaluation transform, plus a ``ViewSet`` of ``frozen.views`` augmented
training views per training image (both cached on disk, see ``benchmark.models.trunk_cache``), and a
``CachedModelFactory`` that builds ``CachedTrunk`` + embedder models for them. A ``features`` dataset
is already tensors: its features are the cached outputs (one view each), nothing is computed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from benchmark.config import BenchmarkConfig, DatasetConfig
from benchmark.data.base import DataSource, ImageSet
from benchmark.data.tensor_sets import TensorSet, ViewSet
from benchmark.models.cached_trunk import CachedTrunk, frozen_encoder
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunk_cache import state_digest, trunk_outputs
from benchmark.models.trunks import Trunk


class CachedModelFactory:
    """``new(seed)``: a ``CachedTrunk`` (with a copy of the trainable last stage, if any) and a seeded embedder."""

    def __init__(self, input_shape: tuple, *, grid: int, stage: Optional[nn.Module], embedding_dim: int,
                 freeze_bn: bool) -> None:
        self.input_shape, self.grid, self.stage = tuple(input_shape), grid, stage
        self.embedding_dim, self.freeze_bn = embedding_dim, freeze_bn

    def new(self, seed: int) -> EmbeddingModel:
        trunk = CachedTrunk(self.input_shape, grid=self.grid, stage=copy.deepcopy(self.stage))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return EmbeddingModel(trunk, self.embedding_dim, freeze_bn=self.freeze_bn)


@dataclass
class FrozenData:
    """The dataset as tensors: evaluation outputs (``source``), training views, and the models for them."""

    source: DataSource
    train_views: ViewSet
    models: CachedModelFactory


def _features_data(source: DataSource, cfg: BenchmarkConfig) -> FrozenData:
    train = source.train
    views = ViewSet(train.values[:, None], train.labels)
    factory = CachedModelFactory(tuple(train.values.shape[1:]), grid=1, stage=None,
                                 embedding_dim=cfg.model.embedding_dim, freeze_bn=cfg.model.freeze_bn)
    return FrozenData(source, views, factory)


def prepare_frozen(source: DataSource, dcfg: DatasetConfig, cfg: BenchmarkConfig, trunk: Callable[[], Trunk], *,
                   device: torch.device, batch_size: int = 256, progress: bool = True) -> FrozenData:
    """``source`` as cached trunk outputs (see the module docstring); ``trunk()`` gives the pretrained trunk."""
    if source.info.get("features"):
        return _features_data(source, cfg)
    f = cfg.frozen
    encoder, stage = frozen_encoder(trunk(), f.cut, f.grid)
    base = {"encoder": state_digest(encoder), "architecture": repr(encoder), "dataset": dcfg.name,
            "root": dcfg.root, "options": dcfg.options, "cut": f.cut, "grid": f.grid}

    def outputs(images: ImageSet, transform, views: Optional[int], what: str) -> torch.Tensor:
        key = dict(base, images=images.fingerprint(), transform=repr(transform), set=what)
        return trunk_outputs(encoder, images, transform, views=views, key=key, seed=cfg.seed, device=device,
                             batch_size=batch_size, cache=f.cache, progress=progress,
                             desc=f"{dcfg.key}: trunk outputs, {what}")

    def tensor_set(images: Optional[ImageSet], what: str) -> Optional[TensorSet]:
        if images is None:
            return None
        return TensorSet(outputs(images, source.eval_transform, None, what), images.labels)

    query, gallery = tensor_set(source.query, "query"), tensor_set(source.gallery, "gallery")
    if query is not None and gallery is not None:  # the union is never embedded as one set
        test = TensorSet(torch.cat([query.values, gallery.values]), np.concatenate([query.labels, gallery.labels]))
    else:
        test = tensor_set(source.test, "test")
    train = tensor_set(source.train, "train")
    views = ViewSet(outputs(source.train, source.train_transform, f.views, f"train, {f.views} views"),
                    source.train.labels)
    frozen_source = DataSource(name=source.name, train=train, test=test, train_transform=None,
                               eval_transform=None, query=query, gallery=gallery, info=dict(source.info))
    factory = CachedModelFactory(tuple(train.values.shape[1:]), grid=f.grid, stage=stage,
                                 embedding_dim=cfg.model.embedding_dim, freeze_bn=cfg.model.freeze_bn)
    return FrozenData(frozen_source, views, factory)
