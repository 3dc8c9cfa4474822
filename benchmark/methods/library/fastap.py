"""FastAP: a histogram approximation of average precision (Cakir, He, Xia, Kulis, Sclaroff, CVPR 2019)."""

from __future__ import annotations

from pytorch_metric_learning import losses

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Int


@register_method(
    name="fastap", display_name="FastAP", source="Cakir et al., CVPR 2019",
    search_space={"num_bins": Int(2, 250)},
    defaults={"num_bins": 10},
)
def fastap(hp: dict, ctx: MethodContext) -> PMLMethod:
    """1 − AP of every anchor, AP estimated from soft histograms (``num_bins``) of squared distances in [0, 4].

    PML's ``FastAPLoss`` (adapted from the authors' code); 10 bins (PML's default) are the default.
    """
    return PMLMethod(losses.FastAPLoss(num_bins=hp["num_bins"]))
