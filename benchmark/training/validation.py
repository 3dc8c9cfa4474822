"""A fold's validation: MAP@R of its validation classes retrieved against themselves."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmark.config import TrainingConfig
from benchmark.data.base import ImageSet
from benchmark.evaluation.embed import embed
from benchmark.evaluation.metrics import compute_metrics


def validate(model: nn.Module, val_set: ImageSet, device: torch.device, cfg: TrainingConfig) -> float:
    """MAP@R of the validation classes against themselves (0 when an embedding is not finite)."""
    emb = embed(model, val_set, device=device, batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers)
    if not np.all(np.isfinite(emb)):
        return 0.0
    return compute_metrics(emb, val_set.labels)["map_at_r"]
