"""Multi-similarity loss with its multi-similarity pair miner (Wang et al., CVPR 2019)."""

from __future__ import annotations

from pytorch_metric_learning import losses, miners

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


@register_method(
    name="ms_miner", display_name="MS+Miner", source="Wang et al., CVPR 2019",
    search_space={"alpha": Float(0.01, 100.0), "beta": Float(0.01, 100.0), "base": Float(0.0, 1.0),
                  "epsilon": Float(0.0, 1.0)},
    defaults={"alpha": 2.0, "beta": 50.0, "base": 0.5, "epsilon": 0.1},
    # the published SOP trace searched beta up to 200 (its optimum 156.61 lies outside [0.01, 100])
    dataset_search_spaces={"sop": {"beta": Float(0.01, 200.0)}},
    cross_modal="reference",
)
def ms_miner(hp: dict, ctx: MethodContext) -> PMLMethod:
    """``multi_similarity`` applied to the pairs kept by ``MultiSimilarityMiner(epsilon)``.

    The miner keeps a negative pair if its similarity exceeds the anchor's hardest positive
    similarity minus ε, and a positive pair if its similarity is below the anchor's hardest
    negative similarity plus ε (the paper's pair mining; ε = 0.1 as in the paper).
    """
    loss = losses.MultiSimilarityLoss(alpha=hp["alpha"], beta=hp["beta"], base=hp["base"])
    return PMLMethod(loss, miner=miners.MultiSimilarityMiner(epsilon=hp["epsilon"]))
