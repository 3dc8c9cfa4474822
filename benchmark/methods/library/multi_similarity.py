"""Multi-similarity loss (Wang et al., CVPR 2019), without a miner; ``ms_miner`` adds its miner."""

from pytorch_metric_learning import losses

from benchmark.methods.base import PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="multi_similarity", display_name="MS", source="Wang et al., CVPR 2019",
    search_space={"alpha": Float(0.01, 100.0), "beta": Float(0.01, 100.0), "base": Float(0.0, 1.0)},
    defaults={"alpha": 2.0, "beta": 50.0, "base": 0.5},
    cross_modal="reference",
)
def multi_similarity(hp, ctx):
    """Per anchor: (1/α) log(1 + Σ_P e^{−α(S−base)}) + (1/β) log(1 + Σ_N e^{β(S−base)}), mean over anchors.

    PML's ``MultiSimilarityLoss`` on cosine similarities S (``base`` is the paper's λ); the
    defaults are PML's α = 2, β = 50, base = 0.5. No pair mining (see ``ms_miner``).
    """
    return PMLMethod(losses.MultiSimilarityLoss(alpha=hp["alpha"], beta=hp["beta"], base=hp["base"]))
