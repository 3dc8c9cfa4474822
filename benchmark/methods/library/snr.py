"""SNR contrastive loss: contrastive loss on the signal-to-noise-ratio distance (Yuan et al., CVPR 2019)."""

from __future__ import annotations

from pytorch_metric_learning import losses, regularizers

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="snr", display_name="SNR", source="Yuan et al., CVPR 2019",
    search_space={"pos_margin": Float(0.0, 2.0), "neg_margin": Float(0.0, 2.0),
                  "embedding_reg_weight": Float(0.0, 1.0)},
    defaults={"pos_margin": 0.0, "neg_margin": 1.0, "embedding_reg_weight": 0.1},
)
def snr(hp: dict, ctx: MethodContext) -> PMLMethod:
    """[d(a,p) − pos_margin]_+ and [neg_margin − d(a,n)]_+ with d(a,x) = Var(a − x) / Var(a), plus λ·mean|Σ_k e_k|.

    PML's ``SignalToNoiseRatioContrastiveLoss`` (each term averaged over its non-zero pairs, on
    L2-normalised embeddings) with the paper's zero-mean regulariser, PML's
    ``ZeroMeanRegularizer``, weighted by ``embedding_reg_weight``: the reality check's
    ``regularizer_weight`` (PML 0.9 had it as a loss argument; PML 2 passes a regulariser object).
    Defaults: PML's margins (0, 1); the regulariser weight 0.1 is our choice.
    """
    weight = hp["embedding_reg_weight"]
    loss = losses.SignalToNoiseRatioContrastiveLoss(
        pos_margin=hp["pos_margin"], neg_margin=hp["neg_margin"],
        embedding_regularizer=regularizers.ZeroMeanRegularizer() if weight > 0 else None,
        embedding_reg_weight=weight)
    return PMLMethod(loss)
