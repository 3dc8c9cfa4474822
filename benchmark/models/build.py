"""Building a fresh model for a unit of work: the (cached) pretrained trunk and a newly seeded embedder."""

from __future__ import annotations

import copy

import torch

from benchmark.config import ModelConfig
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import Trunk, build_trunk


class ModelFactory:
    """Loads the trunk's weights once per process; ``new(seed)`` returns an independent model."""

    def __init__(self, cfg: ModelConfig, *, progress: bool = True) -> None:
        self.cfg = cfg
        self.progress = progress
        self._trunk: Trunk | None = None

    def trunk(self) -> Trunk:
        if self._trunk is None:
            if self.cfg.trunk == "small_cnn" and self.cfg.pretrained:
                from benchmark.models.pretrain import pretrained_small_cnn

                self._trunk = pretrained_small_cnn(epochs=self.cfg.pretrain_epochs, progress=self.progress)
            else:
                self._trunk = build_trunk(self.cfg.trunk, pretrained=self.cfg.pretrained, weights=self.cfg.weights)
        return self._trunk

    def new(self, seed: int) -> EmbeddingModel:
        """A model with a copy of the trunk and an embedder initialised from ``seed``."""
        trunk = copy.deepcopy(self.trunk())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = EmbeddingModel(trunk, self.cfg.embedding_dim, freeze_bn=self.cfg.freeze_bn)
        return model
