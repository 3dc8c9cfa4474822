"""Embedding an image set with a model, and evaluating fold models separated and concatenated."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from benchmark.constants import CONCATENATED, fold_embedding
from benchmark.data.base import DataSource, ImageSet
from benchmark.evaluation.metrics import compute_metrics, l2_normalize


@torch.no_grad()
def embed(model: nn.Module, images: ImageSet, *, device: torch.device, batch_size: int = 256,
          num_workers: int = 0) -> np.ndarray:
    """Embeddings (N x D, float32) of every image of ``images`` in order, with ``model`` in eval mode."""
    was_training = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(images, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    out = []
    for x, _, _ in loader:
        out.append(model(x.to(device)).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def concatenate(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """The folds' L2-normalised embeddings joined (``compute_metrics`` normalises the result again)."""
    return np.concatenate([l2_normalize(e) for e in embeddings], axis=1)


def evaluate_models(models: Sequence[nn.Module], data: DataSource, *, device: torch.device,
                    recall_at: Sequence[int] = (1,), batch_size: int = 256,
                    num_workers: int = 0) -> dict[str, dict[str, float]]:
    """Test metrics of each fold model alone (``fold{i}``) and of their concatenation.

    Test-set-against-itself, or query against gallery when the dataset has them (In-shop).
    """
    def run(query_sets, gallery_sets):
        q = concatenate(query_sets) if len(query_sets) > 1 else query_sets[0]
        if gallery_sets is None:
            return compute_metrics(q, query_labels, recall_at=recall_at)
        g = concatenate(gallery_sets) if len(gallery_sets) > 1 else gallery_sets[0]
        return compute_metrics(q, query_labels, g, gallery_labels, recall_at=recall_at)

    query_set = data.query if data.has_query_gallery else data.test
    gallery_set = data.gallery if data.has_query_gallery else None
    query_set = query_set.with_transform(data.eval_transform)
    query_labels = query_set.labels
    gallery_labels = gallery_set.labels if gallery_set is not None else None
    q_embs, g_embs = [], []
    for model in models:
        q_embs.append(embed(model, query_set, device=device, batch_size=batch_size, num_workers=num_workers))
        if gallery_set is not None:
            g_embs.append(embed(model, gallery_set.with_transform(data.eval_transform), device=device,
                                batch_size=batch_size, num_workers=num_workers))
    results = {fold_embedding(i): run([q_embs[i]], [g_embs[i]] if g_embs else None) for i in range(len(models))}
    if len(models) > 1:
        results[CONCATENATED] = run(q_embs, g_embs if g_embs else None)
    return results
