"""Multi-similarity loss with its multi-similarity pair miner (Wang et al., CVPR 2019)."""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses, miners
from torch import nn

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
    negative similarity plus ε (the paper's pair mining; ε = 0.1 as in the paper). The loss is the
    paper's: the mean over the batch's anchors of (1/α) log(1 + Σ_{mined P_i} e^{−α(S−λ)}) +
    (1/β) log(1 + Σ_{mined N_i} e^{β(S−λ)}), an anchor with no mined pair counting 0.

    Differences from the reference code, kept on purpose:

    * pytorch-metric-learning's pair losses return 0 when every index array of the mined tuple has at
      most one element (a batch with exactly one mined positive and one mined negative pair): the mined
      pairs go through ``SingletonSafePairs``, which repeats such arrays, so the paper's value is computed
      (the pair masks are sets: a repeated pair counts once).
    * The MS authors' code skips an anchor that has no mined positive or no mined negative pair and divides by
      the batch size; here (as in the paper's formula and PML) such an anchor keeps the term it has.
    """
    loss = losses.MultiSimilarityLoss(alpha=hp["alpha"], beta=hp["beta"], base=hp["base"])
    return PMLMethod(loss, miner=SingletonSafePairs(miners.MultiSimilarityMiner(epsilon=hp["epsilon"])))


class SingletonSafePairs(nn.Module):
    """A pair miner whose tuple (a1, p, a2, n) PML's pair losses never mistake for an empty one.

    ``GenericPairLoss.compute_loss`` returns 0 when every array holds at most one index, so one mined
    positive and one negative pair would give no loss. Such arrays are repeated (each index twice): the
    losses build their pair masks by indexing, so the loss is unchanged whenever PML computes it.
    """

    def __init__(self, miner: nn.Module) -> None:
        super().__init__()
        self.miner = miner

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, ref_emb: torch.Tensor | None = None,
                ref_labels: torch.Tensor | None = None) -> tuple:
        """The miner's pairs (against ``ref_emb``/``ref_labels`` in a cross-modal mode), repeated if singletons."""
        pairs = tuple(self.miner(embeddings, labels, ref_emb, ref_labels))
        if any(len(x) for x in pairs) and all(len(x) <= 1 for x in pairs):
            pairs = tuple(x.repeat(2) for x in pairs)
        return pairs
