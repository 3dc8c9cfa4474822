"""Margin loss with a learned boundary β (Wu, Manmatha, Smola, Krähenbühl, ICCV 2017); one β for all classes."""

from __future__ import annotations

from pytorch_metric_learning import losses

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="margin", display_name="Margin", source="Wu et al., ICCV 2017",
    search_space={"loss_lr": Float(1e-6, 1.0, log=True), "margin": Float(-0.2, 2.0),
                  "beta": Float(-0.2, 2.0)},
    defaults={"loss_lr": 1e-4, "margin": 0.2, "beta": 1.2, "nu": 0.0},
    has_parameters=True,
)
def margin(hp: dict, ctx: MethodContext) -> PMLMethod:
    """[d(a,p) − β + α]_+ + [β − d(a,n) + α]_+ per triplet, β learned (initial ``beta``), α = ``margin``.

    PML's ``MarginLoss(learn_beta=True, nu=0)`` on Euclidean distances of L2-normalised embeddings,
    summed and divided by the number of non-zero terms (PML's ``DivisorReducer``). Paper defaults
    α = 0.2, β₀ = 1.2; ν = 0 (PML's default: no regulariser on β; fixed, not searched).

    Differences from the paper: the paper draws pairs with distance-weighted sampling; here every
    (a, p, n) triplet of the batch is used (each positive pair counts once per negative) and no
    miner is applied. PML has ``DistanceWeightedMiner``, but the reality check's "Margin" rows,
    which the DCML tables reproduce, were trained without a miner (its only miner is in
    "MS+Miner", and the protocol's space for Margin has no miner parameter), so we match that.
    """
    loss = losses.MarginLoss(margin=hp["margin"], nu=hp["nu"], beta=hp["beta"], learn_beta=True)
    return PMLMethod(loss, loss_lr=hp["loss_lr"])
