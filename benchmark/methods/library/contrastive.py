"""Contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006), as pytorch-metric-learning implements it."""

from pytorch_metric_learning import losses

from benchmark.methods.base import PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="contrastive", display_name="Contrastive", source="Hadsell et al., CVPR 2006",
    search_space={"pos_margin": Float(-0.2, 2.0), "neg_margin": Float(-0.2, 2.0)},
    defaults={"pos_margin": 0.0, "neg_margin": 1.0},
    cross_modal="reference",
)
def contrastive(hp, ctx):
    """Pulls positives within ``pos_margin``, pushes negatives beyond ``neg_margin`` (Euclidean, L2-normalised)."""
    return PMLMethod(losses.ContrastiveLoss(pos_margin=hp["pos_margin"], neg_margin=hp["neg_margin"]))
