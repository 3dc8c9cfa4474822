"""NT-Xent (normalised temperature-scaled cross-entropy; Sohn, NeurIPS 2016; Chen et al., ICML 2020), supervised."""

from __future__ import annotations

from pytorch_metric_learning import losses

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="ntxent", display_name="NT-Xent", source="Sohn, NeurIPS 2016; Chen et al., ICML 2020",
    search_space={"temperature": Float(1e-5, 100.0, log=True)},
    defaults={"temperature": 0.07},
    cross_modal="reference",
)
def ntxent(hp: dict, ctx: MethodContext) -> PMLMethod:
    """-log(e^{s_ap/τ} / (e^{s_ap/τ} + Σ_n e^{s_an/τ})) per positive pair (a, p), cosine similarity s.

    PML's ``NTXentLoss``: every same-class pair of the batch is a positive pair and every
    different-class sample of the anchor is a negative; the loss is the mean over positive pairs.
    SimCLR's self-supervised form has one positive per anchor (its other augmented view); the
    supervised form used by the reality check is what PML implements. Default τ = 0.07 (PML's).
    """
    return PMLMethod(losses.NTXentLoss(temperature=hp["temperature"]))
