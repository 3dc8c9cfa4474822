"""Embedding an image set with a model, and evaluating fold models separated and concatenated."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from benchmark.constants import CONCATENATED, fold_embedding
from benchmark.data.base import DataSource, ImageSet
from benchmark.data.loader_workers import resolve_num_workers
from benchmark.data.tensor_sets import TensorSet
from benchmark.evaluation.metrics import compute_metrics, l2_normalize


@torch.no_grad()
def embed(model: nn.Module, images: ImageSet, *, device: torch.device, batch_size: int = 256,
          num_workers: int | str = 0) -> np.ndarray:
    """Embeddings (N x D, float32) of every image of ``images`` in order, with ``model`` in eval mode.

    ``num_workers``: DataLoader worker processes, or ``auto`` (``benchmark.data.loader_workers``).
    """
    was_training = model.training
    model.eval()
    if isinstance(images, TensorSet):  # cached trunk outputs or features: no per-item loading
        batches = images.batches(batch_size)
    else:
        loader = torch.utils.data.DataLoader(images, batch_size=batch_size, shuffle=False,
                                             num_workers=resolve_num_workers(num_workers, device))
        batches = (x for x, _, _ in loader)
    out = []
    for x in batches:
        out.append(model(x.to(device)).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def concatenate(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """The folds' L2-normalised embeddings joined (``compute_metrics`` normalises the result again)."""
    return np.concatenate([l2_normalize(e) for e in embeddings], axis=1)


def evaluate_models(models: Sequence[nn.Module], data: DataSource, *, device: torch.device,
                    recall_at: Sequence[int] = (1,), batch_size: int = 256, num_workers: int | str = 0,
                    val_sets: Optional[Sequence[ImageSet]] = None, far: Optional[float] = 1e-3,
                    seed: int = 0) -> dict[str, dict[str, float]]:
    """Test metrics of each fold model alone (``fold{i}``) and of their concatenation.

    Retrieval: test-set-against-itself, or query against gallery when the dataset has them (In-shop, a list
    file that declares them). Where the dataset gives each test image a category (``info["test_categories"]``,
    aligned with ``data.test``: SOP's super-classes, a df.csv's ``category``), P@1 and MAP@R per category of
    the queries are added (``map_at_r@<category>``).
    With ``far`` set, verification metrics are added: ROC AUC on test pairs for every model, and for
    each fold model the true-accept rate at the threshold chosen on *its own validation classes*
    (``val_sets[i]``) for a false-accept rate of ``far`` (the concatenation has no validation set
    of its own, so it gets the AUC only). For test-set-against-itself datasets the correlation of
    the embedding norm with per-query P@1 (the uncertainty score of probabilistic embeddings) is added.
    """
    from benchmark.evaluation.uncertainty import norm_p1_correlation
    from benchmark.evaluation.verification import choose_threshold, verification_metrics

    query_gallery = data.has_query_gallery
    query_set = (data.query if query_gallery else data.test).with_transform(data.eval_transform)
    gallery_set = data.gallery.with_transform(data.eval_transform) if query_gallery else None
    # a category per test image (aligned with ``test``: query first): per-category metrics of the queries
    categories = data.info.get("test_categories")
    if categories is not None:
        categories = np.asarray(categories, dtype=object)[:len(query_set)]

    def embed_set(model, images):
        return embed(model, images, device=device, batch_size=batch_size, num_workers=num_workers)

    def retrieval(q, g):
        if g is None:
            return compute_metrics(q, query_set.labels, recall_at=recall_at, query_categories=categories)
        return compute_metrics(q, query_set.labels, g, gallery_set.labels, recall_at=recall_at,
                               query_categories=categories)

    def verification(q, g, threshold):
        if far is None:
            return {}
        emb = q if g is None else np.concatenate([q, g])
        labels = query_set.labels if g is None else np.concatenate([query_set.labels, gallery_set.labels])
        return verification_metrics(emb, labels, threshold=threshold, far=far, seed=seed)

    q_embs, g_embs, results = [], [], {}
    for i, model in enumerate(models):
        q = embed_set(model, query_set)
        g = embed_set(model, gallery_set) if query_gallery else None
        q_embs.append(q)
        g_embs.append(g)
        out = retrieval(q, g)
        threshold = None
        if far is not None and val_sets is not None:
            threshold = choose_threshold(embed_set(model, val_sets[i]), val_sets[i].labels, far=far, seed=seed)
        out.update(verification(q, g, threshold))
        if not query_gallery:
            out.update(norm_p1_correlation(q, query_set.labels))
        results[fold_embedding(i)] = out
    if len(models) > 1:
        q = concatenate(q_embs)
        g = concatenate(g_embs) if query_gallery else None
        results[CONCATENATED] = {**retrieval(q, g), **verification(q, g, None)}
    return results
