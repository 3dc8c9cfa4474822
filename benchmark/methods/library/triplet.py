"""Triplet margin loss (Weinberger & Saul 2009; Schroff et al., CVPR 2015) over all batch triplets."""

from pytorch_metric_learning import losses

from benchmark.methods.base import PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="triplet", display_name="Triplet", source="Schroff et al., CVPR 2015",
    search_space={"margin": Float(-0.2, 2.0)},
    defaults={"margin": 0.05},
    cross_modal="reference",
)
def triplet(hp, ctx):
    """[d(a,p) - d(a,n) + margin]_+ averaged over the triplets with non-zero loss (PML's default reducer)."""
    return PMLMethod(losses.TripletMarginLoss(margin=hp["margin"]))
