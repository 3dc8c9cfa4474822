"""Margin loss with one learned boundary β per class (Wu et al., ICCV 2017, "β^(class)")."""

from __future__ import annotations

from pytorch_metric_learning import losses

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="margin_per_class", display_name="Margin/class", source="Wu et al., ICCV 2017",
    search_space={"loss_lr": Float(1e-6, 1.0, log=True), "margin": Float(-0.2, 2.0),
                  "beta": Float(-0.2, 2.0)},
    defaults={"loss_lr": 1e-4, "margin": 0.2, "beta": 1.2, "nu": 0.0},
    needs_num_classes=True, has_parameters=True,
)
def margin_per_class(hp: dict, ctx: MethodContext) -> PMLMethod:
    """As ``margin``, but β is a vector with one entry per training class, indexed by the anchor's class.

    PML's ``MarginLoss(learn_beta=True, num_classes=C, nu=0)``; every β starts at ``beta``. Same
    differences from the paper as ``margin`` (all triplets, no distance-weighted sampling).
    """
    loss = losses.MarginLoss(margin=hp["margin"], nu=hp["nu"], beta=hp["beta"], learn_beta=True,
                             num_classes=ctx.num_classes)
    return PMLMethod(loss, loss_lr=hp["loss_lr"])
