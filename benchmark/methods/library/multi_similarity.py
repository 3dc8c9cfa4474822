"""Multi-similarity loss (Wang et al., CVPR 2019), without a miner; ``ms_miner`` adds its miner."""

from pytorch_metric_learning import losses

from benchmark.methods.base import PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="multi_similarity", display_name="MS", source="Wang et al., CVPR 2019",
    search_space={"alpha": Float(0.01, 100.0), "beta": Float(0.01, 100.0), "base": Float(0.0, 1.0)},
    defaults={"alpha": 2.0, "beta": 50.0, "base": 0.5},
)
def multi_similarity(hp, ctx):
    """Soft weighting of positive and negative pairs by their self and relative similarities."""
    return PMLMethod(losses.MultiSimilarityLoss(alpha=hp["alpha"], beta=hp["beta"], base=hp["base"]))
