"""Lifted structure loss (Oh Song et al., CVPR 2016) in the per-anchor form the DRO paper writes (seed 002)."""

from __future__ import annotations

from pytorch_metric_learning import losses
from pytorch_metric_learning.distances import CosineSimilarity

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="lifted_structure", display_name="Lifted Structure", source="Oh Song et al., CVPR 2016",
    search_space={"neg_margin": Float(0.0, 1.0)},
    defaults={"pos_margin": 0.5, "neg_margin": 0.5},
)
def lifted_structure(hp: dict, ctx: MethodContext) -> PMLMethod:
    """Per anchor i: [log Σ_{k∈P_i} e^{pos_margin − S_ik} + log Σ_{k∈N_i} e^{S_ik − neg_margin}]_+, mean over anchors.

    The DRO paper (Qi et al., ECCV 2020) writes the lifted structure loss as
    Σ_i [log Σ_{P_i} e^{λ − S_ik} + log Σ_{N_i} e^{S_ik − λ}]_+ on the similarity S = ⟨x_i, x_k⟩ of
    normalised embeddings: a logsumexp over each anchor's positives and over its negatives. That
    is PML's ``GeneralizedLiftedStructureLoss`` (the "generalised" form of Hermans et al. 2017),
    used here with ``CosineSimilarity``; PML's ``LiftedStructureLoss`` is the 2016 paper's
    per-positive-pair form (squared hinge over pairs, negatives of both ends) and is not used.

    Only pos_margin − neg_margin matters (λ cancels in the DRO formula: pos_margin = neg_margin
    = λ = 0.5 reproduces it exactly), so one parameter is searched: ``neg_margin`` in [0, 1]
    with ``pos_margin`` fixed at 0.5, i.e. an extra margin in [−0.5, 0.5] centred on the paper's 0.
    Reduction: PML takes the mean over anchors; the paper's formula sums them (a constant factor).
    """
    loss = losses.GeneralizedLiftedStructureLoss(neg_margin=hp["neg_margin"], pos_margin=hp["pos_margin"],
                                                 distance=CosineSimilarity())
    return PMLMethod(loss)
