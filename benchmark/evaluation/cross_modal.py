"""Cross-modal evaluation: retrieval in both directions and zero-shot classification, per fold model and concatenated.

For a two-tower model (``benchmark.models.two_tower``) and a paired dataset's test classes:

* **retrieval A -> B**: every item of modality A is a query against all items of modality B (and B -> A the
  reverse), relevance by class, with the harness's P@1, R-Precision, MAP@R and Recall@K
  (``compute_metrics`` with a reference set: no self-exclusion is needed, a query is never a reference; R is
  the number of items of the query's class in the *other* modality);
* **zero-shot accuracy A -> B**: every test item of A is given the class of the nearest class prototype of B
  (the mean of that class's L2-normalised B embeddings, compared by cosine similarity), so that classes never
  seen in training are recognised through the other modality (the lecture's zero-shot classification;
  chance is 1 / number of test classes).

``evaluate_two_towers`` returns ``{direction: {fold{i} | concatenated: {metric: value}}}``; the concatenation
joins the fold models' L2-normalised embeddings of each modality, as for single-modality runs.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from benchmark.constants import CONCATENATED, fold_embedding
from benchmark.data.paired import SecondModality
from benchmark.data.tensor_sets import TensorSet
from benchmark.evaluation.embed import concatenate
from benchmark.evaluation.metrics import as_embeddings, as_labels, compute_metrics, l2_normalize

ZERO_SHOT = "zero_shot_accuracy"


def zero_shot_accuracy(query: np.ndarray, query_labels: np.ndarray, reference: np.ndarray,
                       reference_labels: np.ndarray) -> float:
    """Fraction of queries whose nearest reference class prototype (mean normalised embedding; cosine; ties by
    the lower class id) is their own class."""
    q = l2_normalize(as_embeddings(query, "query"))
    r = l2_normalize(as_embeddings(reference, "reference"))
    ql, rl = as_labels(query_labels, len(q)), as_labels(reference_labels, len(r))
    classes, inverse = np.unique(rl, return_inverse=True)
    prototypes = np.zeros((len(classes), r.shape[1]), dtype=np.float64)
    np.add.at(prototypes, inverse, r.astype(np.float64))
    prototypes /= np.bincount(inverse, minlength=len(classes))[:, None]
    prototypes = l2_normalize(prototypes)
    predicted = classes[np.argmax(q.astype(np.float64) @ prototypes.T, axis=1)]
    return float(np.mean(predicted == ql))


def cross_modal_metrics(query: np.ndarray, query_labels: np.ndarray, reference: np.ndarray,
                        reference_labels: np.ndarray, recall_at: Sequence[int] = (1,)) -> dict[str, float]:
    """Retrieval metrics of ``query`` against ``reference`` (another modality) and the zero-shot accuracy."""
    out = compute_metrics(query, query_labels, reference, reference_labels, recall_at=recall_at)
    out[ZERO_SHOT] = zero_shot_accuracy(query, query_labels, reference, reference_labels)
    return out


@torch.no_grad()
def embed_vectors(fn: Callable[[torch.Tensor], torch.Tensor], items: TensorSet, *, device: torch.device,
                  batch_size: int = 256) -> np.ndarray:
    """``fn`` (a tower) applied to ``items``' values in order, ``batch_size`` rows at a time."""
    out = [fn(x.to(device)).float().cpu().numpy() for x in items.batches(batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def embed_pair(model: torch.nn.Module, a: TensorSet, b: TensorSet, *, device: torch.device,
               batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Both modalities' embeddings by a two-tower model, in eval mode (its mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        return (embed_vectors(model.embed_a, a, device=device, batch_size=batch_size),
                embed_vectors(model.embed_b, b, device=device, batch_size=batch_size))
    finally:
        model.train(was_training)


def both_directions(ea: np.ndarray, la: np.ndarray, eb: np.ndarray, lb: np.ndarray, directions: tuple[str, str],
                    recall_at: Sequence[int]) -> dict[str, dict[str, float]]:
    """``{a-to-b: metrics, b-to-a: metrics}``."""
    return {directions[0]: cross_modal_metrics(ea, la, eb, lb, recall_at),
            directions[1]: cross_modal_metrics(eb, lb, ea, la, recall_at)}


def evaluate_two_towers(models: Sequence[torch.nn.Module], test_a: TensorSet, second: SecondModality, *,
                        device: torch.device, recall_at: Sequence[int] = (1,),
                        batch_size: int = 256) -> dict[str, dict[str, dict[str, float]]]:
    """Test metrics per direction of each fold model (``fold{i}``) and of their concatenation."""
    directions = second.directions()
    out: dict[str, dict[str, dict[str, float]]] = {d: {} for d in directions}
    embs_a, embs_b = [], []
    la, lb = test_a.labels, second.test.labels
    for i, model in enumerate(models):
        ea, eb = embed_pair(model, test_a, second.test, device=device, batch_size=batch_size)
        embs_a.append(ea)
        embs_b.append(eb)
        for d, metrics in both_directions(ea, la, eb, lb, directions, recall_at).items():
            out[d][fold_embedding(i)] = metrics
    if len(models) > 1:
        both = both_directions(concatenate(embs_a), la, concatenate(embs_b), lb, directions, recall_at)
        for d, metrics in both.items():
            out[d][CONCATENATED] = metrics
    return out


def validation_map_at_r(model: torch.nn.Module, a: TensorSet, b: TensorSet, *, device: torch.device,
                        batch_size: int = 256) -> float:
    """The search objective of one fold: the mean of both directions' MAP@R on the validation classes
    (0 when an embedding is not finite)."""
    ea, eb = embed_pair(model, a, b, device=device, batch_size=batch_size)
    if not (np.all(np.isfinite(ea)) and np.all(np.isfinite(eb))):
        return 0.0
    return 0.5 * (compute_metrics(ea, a.labels, eb, b.labels)["map_at_r"]
                  + compute_metrics(eb, b.labels, ea, a.labels)["map_at_r"])
