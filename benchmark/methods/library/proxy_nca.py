"""ProxyNCA (Movshovitz-Attias et al., ICCV 2017), as pytorch-metric-learning implements it."""

from __future__ import annotations

from pytorch_metric_learning import losses

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="proxy_nca", display_name="ProxyNCA", source="Movshovitz-Attias et al., ICCV 2017",
    search_space={"loss_lr": Float(1e-6, 1.0, log=True), "softmax_scale": Float(0.01, 100.0)},
    defaults={"loss_lr": 1e-4, "softmax_scale": 1.0},
    needs_num_classes=True, has_parameters=True,
    cross_modal="shared",
)
def proxy_nca(hp: dict, ctx: MethodContext) -> PMLMethod:
    """-log softmax(-softmax_scale · ‖x̂ − p̂_c‖²)_y over one learnable proxy per class (x̂, p̂ L2-normalised).

    Differs from the paper, kept as PML (and the reality check) have it: the softmax denominator
    runs over *all* proxies, the positive one included (the 2017 paper excluded it; ProxyNCA++
    argues for including it); a sample whose positive probability underflows to 0 is dropped from
    the mean (PML's ``non_zero`` filter, reachable only for large ``softmax_scale``). Proxies start
    as N(0, 1) and are learned with their own learning rate ``loss_lr`` (default 1e-4, 100x the
    protocol's trunk learning rate).
    """
    loss = losses.ProxyNCALoss(num_classes=ctx.num_classes, embedding_size=ctx.embedding_dim,
                               softmax_scale=hp["softmax_scale"])
    return PMLMethod(loss, loss_lr=hp["loss_lr"])
