"""CosFace / large margin cosine loss (Wang et al., CVPR 2018)."""

from __future__ import annotations

from pytorch_metric_learning import losses

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="cosface", display_name="COS", source="Wang et al., CVPR 2018",
    search_space={"loss_lr": Float(1e-6, 1.0, log=True), "margin": Float(0.0, 1.0),
                  "scale": Float(0.01, 200.0)},
    defaults={"loss_lr": 1e-4, "margin": 0.35, "scale": 64.0},
    needs_num_classes=True, has_parameters=True,
)
def cosface(hp: dict, ctx: MethodContext) -> PMLMethod:
    """Cross-entropy over s · (cos θ_c − m·[c = y]), cosines between L2-normalised embeddings and class weights.

    PML's ``CosFaceLoss``; the paper's s = 64, m = 0.35 are the defaults.
    """
    loss = losses.CosFaceLoss(num_classes=ctx.num_classes, embedding_size=ctx.embedding_dim,
                              margin=hp["margin"], scale=hp["scale"])
    return PMLMethod(loss, loss_lr=hp["loss_lr"])
