"""Proxy-Anchor loss (Kim, Kim, Cho, Kwak, CVPR 2020)."""

from __future__ import annotations

from pytorch_metric_learning import losses

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="proxy_anchor", display_name="Proxy-Anchor", source="Kim et al., CVPR 2020",
    search_space={"loss_lr": Float(1e-6, 1.0, log=True), "margin": Float(0.0, 0.2),
                  "alpha": Float(8.0, 128.0, log=True)},
    defaults={"loss_lr": 1e-4, "margin": 0.1, "alpha": 32.0},
    needs_num_classes=True, has_parameters=True,
    warmup_epochs=1,
    cross_modal="shared",
)
def proxy_anchor(hp: dict, ctx: MethodContext) -> PMLMethod:
    """Each proxy is an anchor: a log-sum-exp over its positive samples in the batch and one over its negatives.

    L = (1/|P⁺|) Σ_{p∈P⁺} log(1 + Σ_{x∈X_p⁺} e^{−α(s(x,p) − δ)}) + (1/|P|) Σ_p log(1 + Σ_{x∈X_p⁻} e^{α(s(x,p) + δ)}),
    s the cosine similarity, P⁺ the proxies with a positive in the batch. PML's ``ProxyAnchorLoss``
    (proxies initialised with Kaiming-normal as in the authors' code).

    Not in the original reality check; the search space is ours, centred on the paper's defaults
    δ = 0.1 (``margin`` in [0, 0.2]) and α = 32 (``alpha`` in [8, 128], log: 32 is its geometric
    centre). ``loss_lr`` defaults to 1e-4 = 100x the protocol's trunk learning rate, the paper's
    proxy/backbone ratio. The authors' code trains only the embedder and proxies during a first
    warm-up epoch: ``warmup_epochs=1`` in the registry entry makes the trainer freeze the trunk
    for that many epochs. Not adopted from the authors' code: their sum of global max and average
    pooling and AdamW (the protocol fixes the trunk, pooling and optimiser for every method).
    """
    loss = losses.ProxyAnchorLoss(num_classes=ctx.num_classes, embedding_size=ctx.embedding_dim,
                                  margin=hp["margin"], alpha=hp["alpha"])
    return PMLMethod(loss, loss_lr=hp["loss_lr"])
