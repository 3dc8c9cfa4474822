"""ArcFace / additive angular margin loss (Deng et al., CVPR 2019)."""

from __future__ import annotations

from pytorch_metric_learning import losses

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="arcface", display_name="ArcFace", source="Deng et al., CVPR 2019",
    search_space={"loss_lr": Float(1e-6, 1.0, log=True), "margin": Float(0.0, 90.0),
                  "scale": Float(0.01, 200.0)},
    defaults={"loss_lr": 1e-4, "margin": 28.6, "scale": 64.0},
    needs_num_classes=True, has_parameters=True,
    # the published SOP trace searched scale up to 300 (its optimum 220.3 lies outside [0.01, 200])
    dataset_search_spaces={"sop": {"scale": Float(0.01, 300.0)}},
)
def arcface(hp: dict, ctx: MethodContext) -> PMLMethod:
    """Cross-entropy over s · cos(θ_c + m·[c = y]); ``margin`` in degrees (28.6° = the paper's 0.5 rad), s = 64.

    PML's ``ArcFaceLoss`` (which keeps the target logit monotone past θ = π − m, as the paper's code does).
    """
    loss = losses.ArcFaceLoss(num_classes=ctx.num_classes, embedding_size=ctx.embedding_dim,
                              margin=hp["margin"], scale=hp["scale"])
    return PMLMethod(loss, loss_lr=hp["loss_lr"])
