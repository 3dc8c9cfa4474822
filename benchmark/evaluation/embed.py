"""Embedding an image set with a model, and evaluating fold models separated and concatenated."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class TestEmbeddings:
    """A test evaluation's embeddings: what its metrics are computed from, and what ``--save embeddings`` keeps.

    ``query[name]`` is the embedding ``name`` (``fold{i}`` or ``concatenated``) of the test set, or of the query
    set of a query/gallery dataset, whose embeddings are in ``gallery[name]`` (empty otherwise).
    ``thresholds[name]``: the verification threshold a fold model chose on its own validation classes.
    ``query_categories``: each query's category where the dataset gives one (SOP's super-classes, a df.csv's
    ``category``), for P@1 and MAP@R per category (``map_at_r@<category>``).
    """

    __test__ = False  # (not a pytest test class, whatever its name)

    query_labels: np.ndarray
    query: dict[str, np.ndarray]
    gallery_labels: Optional[np.ndarray] = None
    gallery: dict[str, np.ndarray] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    query_categories: Optional[np.ndarray] = None

    @property
    def has_gallery(self) -> bool:
        return self.gallery_labels is not None


def embed_test(models: Sequence[nn.Module], data: DataSource, *, device: torch.device, batch_size: int = 256,
               num_workers: int | str = 0, val_sets: Optional[Sequence[ImageSet]] = None,
               far: Optional[float] = 1e-3, seed: int = 0, names: Optional[Sequence[str]] = None) -> TestEmbeddings:
    """The test (or query and gallery) embeddings of each model, ``fold{i}``, and with several models their
    concatenation; with ``far`` and ``val_sets`` each fold model's verification threshold, chosen on its own
    validation classes. ``names`` renames the models' embeddings (the raw trunk's is ``concatenated``)."""
    from benchmark.evaluation.verification import choose_threshold

    query_gallery = data.has_query_gallery
    query_set = (data.query if query_gallery else data.test).with_transform(data.eval_transform)
    gallery_set = data.gallery.with_transform(data.eval_transform) if query_gallery else None

    def embed_set(model, images):
        return embed(model, images, device=device, batch_size=batch_size, num_workers=num_workers)

    # a category per test image (aligned with ``test``: query first): per-category metrics of the queries
    categories = data.info.get("test_categories")
    if categories is not None:
        categories = np.asarray(categories, dtype=object)[:len(query_set)]

    names = list(names) if names is not None else [fold_embedding(i) for i in range(len(models))]
    out = TestEmbeddings(query_labels=np.asarray(query_set.labels),
                         gallery_labels=np.asarray(gallery_set.labels) if query_gallery else None, query={},
                         query_categories=categories)
    for i, (name, model) in enumerate(zip(names, models)):
        out.query[name] = embed_set(model, query_set)
        if query_gallery:
            out.gallery[name] = embed_set(model, gallery_set)
        if far is not None and val_sets is not None:
            out.thresholds[name] = choose_threshold(embed_set(model, val_sets[i]), val_sets[i].labels, far=far,
                                                    seed=seed)
    if len(models) > 1:
        out.query[CONCATENATED] = concatenate([out.query[n] for n in names])
        if query_gallery:
            out.gallery[CONCATENATED] = concatenate([out.gallery[n] for n in names])
    return out


def score_embeddings(emb: TestEmbeddings, *, recall_at: Sequence[int] = (1,), far: Optional[float] = 1e-3,
                     seed: int = 0, clustering: bool = False) -> dict[str, dict[str, float]]:
    """Test metrics ``{embedding: {metric: value}}`` of every embedding of ``emb`` (see :func:`evaluate_models`).

    The one place a test evaluation's metrics are computed, during a run and again from saved embeddings
    (``dml-bench evaluate RUN``), so that both give the same values."""
    from benchmark.evaluation.clustering import clustering_metrics
    from benchmark.evaluation.uncertainty import norm_p1_correlation
    from benchmark.evaluation.verification import verification_metrics

    results = {}
    for name, q in emb.query.items():
        g = emb.gallery.get(name) if emb.has_gallery else None
        if g is None:
            out = compute_metrics(q, emb.query_labels, recall_at=recall_at, query_categories=emb.query_categories)
            everything, labels = q, emb.query_labels
        else:
            out = compute_metrics(q, emb.query_labels, g, emb.gallery_labels, recall_at=recall_at,
                                  query_categories=emb.query_categories)
            everything, labels = np.concatenate([q, g]), np.concatenate([emb.query_labels, emb.gallery_labels])
        if far is not None:
            out.update(verification_metrics(everything, labels, threshold=emb.thresholds.get(name), far=far,
                                            seed=seed))
        if name != CONCATENATED and g is None:
            out.update(norm_p1_correlation(q, emb.query_labels))
        if clustering:
            out.update(clustering_metrics(everything, labels, seed=seed))
        results[name] = out
    return results


def evaluate_models(models: Sequence[nn.Module], data: DataSource, *, device: torch.device,
                    recall_at: Sequence[int] = (1,), batch_size: int = 256, num_workers: int | str = 0,
                    val_sets: Optional[Sequence[ImageSet]] = None, far: Optional[float] = 1e-3,
                    seed: int = 0, clustering: bool = False) -> dict[str, dict[str, float]]:
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
    With ``clustering``, NMI, AMI and F1 of k-means (``benchmark.evaluation.clustering``). The same as
    ``score_embeddings(embed_test(...))``.
    """
    emb = embed_test(models, data, device=device, batch_size=batch_size, num_workers=num_workers,
                     val_sets=val_sets, far=far, seed=seed)
    return score_embeddings(emb, recall_at=recall_at, far=far, seed=seed, clustering=clustering)
