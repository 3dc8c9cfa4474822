"""Normalized softmax (Zhai & Wu, BMVC 2019 "Classification is a strong baseline for deep metric learning")."""

from __future__ import annotations

from pytorch_metric_learning import losses

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="normalized_softmax", display_name="N. Softmax", source="Zhai & Wu, BMVC 2019",
    search_space={"loss_lr": Float(1e-6, 1.0, log=True), "temperature": Float(0.01, 100.0, log=True)},
    defaults={"loss_lr": 1e-4, "temperature": 0.05},
    needs_num_classes=True, has_parameters=True,
)
def normalized_softmax(hp: dict, ctx: MethodContext) -> PMLMethod:
    """Cross-entropy over cos(x, w_c) / temperature, x and the class weights w_c L2-normalised; mean over the batch.

    PML's ``NormalizedSoftmaxLoss``; the paper's temperature 0.05 is the default.
    """
    loss = losses.NormalizedSoftmaxLoss(num_classes=ctx.num_classes, embedding_size=ctx.embedding_dim,
                                        temperature=hp["temperature"])
    return PMLMethod(loss, loss_lr=hp["loss_lr"])
