"""Lifted structure loss (Oh Song et al., CVPR 2016) in the per-anchor form the DRO paper writes (seed 002)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from benchmark.methods.base import Method, MethodContext
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


def lifted_structure_per_anchor(embeddings: torch.Tensor, labels: torch.Tensor, *, pos_margin: float,
                                neg_margin: float) -> torch.Tensor:
    """LS_i = [log Σ_{k∈P_i} e^{pos_margin − S_ik} + log Σ_{k∈N_i} e^{S_ik − neg_margin}]₊ for every anchor i.

    S is the cosine similarity. An anchor without positives (or without negatives) has a log-sum
    over an empty set, log 0 = −∞, so the hinge gives it 0; it is computed as 0 directly so that
    values and gradients stay finite.
    """
    x = F.normalize(embeddings, dim=1)
    sim = x @ x.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=sim.device)
    positives, negatives = same & ~eye, ~same
    both = positives.any(dim=1) & negatives.any(dim=1)
    lowest = torch.finfo(sim.dtype).min
    pos = torch.logsumexp((pos_margin - sim).masked_fill(~positives, lowest), dim=1)
    neg = torch.logsumexp((sim - neg_margin).masked_fill(~negatives, lowest), dim=1)
    value = torch.where(both, pos + neg, torch.zeros_like(pos))
    return value.clamp_min(0.0)


class LiftedStructure(Method):
    """The per-anchor lifted structure loss (:func:`lifted_structure_per_anchor`), mean over the batch's anchors."""

    def __init__(self, pos_margin: float, neg_margin: float) -> None:
        super().__init__()
        self.pos_margin, self.neg_margin = float(pos_margin), float(neg_margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices: Optional[torch.Tensor] = None) -> torch.Tensor:
        return lifted_structure_per_anchor(embeddings, labels, pos_margin=self.pos_margin,
                                           neg_margin=self.neg_margin).mean()


@register_method(
    name="lifted_structure", display_name="Lifted Structure", source="Oh Song et al., CVPR 2016",
    search_space={"neg_margin": Float(0.0, 1.0)},
    defaults={"pos_margin": 0.5, "neg_margin": 0.5},
)
def lifted_structure(hp: dict, ctx: MethodContext) -> LiftedStructure:
    """Per anchor i: [log Σ_{k∈P_i} e^{pos_margin − S_ik} + log Σ_{k∈N_i} e^{S_ik − neg_margin}]₊, mean over anchors.

    The DRO paper (Qi et al., ECCV 2020) writes the lifted structure loss as
    Σ_i [log Σ_{P_i} e^{λ − S_ik} + log Σ_{N_i} e^{S_ik − λ}]₊ on the similarity S = ⟨x_i, x_k⟩ of
    normalised embeddings: a logsumexp over each anchor's positives and over its negatives (the
    "generalised" form of Hermans et al. 2017; the 2016 paper's per-positive-pair form, a squared
    hinge over pairs with the negatives of both ends, is not used). An anchor without positives
    (or negatives) has an empty log-sum, log 0 = −∞, and contributes 0 — unlike PML's
    ``GeneralizedLiftedStructureLoss``, which sets the empty log-sum to 0 and so charges such an
    anchor [log Σ_{N_i} e^{S_ik − λ}]₊; with the class-balanced batches every anchor has both.

    Only pos_margin − neg_margin matters (λ cancels in the DRO formula: pos_margin = neg_margin
    = λ = 0.5 reproduces it exactly), so one parameter is searched: ``neg_margin`` in [0, 1]
    with ``pos_margin`` fixed at 0.5, i.e. an extra margin in [−0.5, 0.5] centred on the paper's 0.
    Reduction: the mean over the batch's anchors (the paper's formula sums them: a constant factor).
    """
    return LiftedStructure(hp["pos_margin"], hp["neg_margin"])
