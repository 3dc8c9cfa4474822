"""Cross-batch memory around the contrastive loss (Wang, Zhang, Huang, Scott, CVPR 2020, "XBM")."""

from __future__ import annotations

from typing import Optional

import torch
from pytorch_metric_learning import losses
from pytorch_metric_learning.distances import CosineSimilarity

from benchmark.methods.base import MethodContext, PMLMethod
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float, Int


@register_method(
    name="contrastive_xbm", display_name="ContXBM", source="Wang et al., CVPR 2020",
    search_space={"neg_margin": Float(0.0, 1.0), "memory_size": Int(128, 8192, log=True)},
    defaults={"pos_margin": 1.0, "neg_margin": 0.5, "memory_size": 1024, "in_batch_weight": 0.0},
)
def contrastive_xbm(hp: dict, ctx: MethodContext) -> PMLMethod:
    """Contrastive loss of the batch against a queue of the last ``memory_size`` (detached) embeddings.

    The XBM paper's contrastive loss on cosine similarity S: [pos_margin − S_ap]_+ for positive
    pairs (pos_margin = 1: every positive is pulled, not searched) and [S_an − λ]_+ for negatives,
    λ = ``neg_margin`` (paper default 0.5; searched in [0, 1], centred on it). PML's
    ``CrossBatchMemory(ContrastiveLoss(distance=CosineSimilarity()))``: the batch is enqueued
    first, pairs are formed between the batch and the whole memory (self-pairs removed).

    ``in_batch_weight`` (not searched; default 0, the paper's loss): the XBM authors' code adds a second
    term, the same loss on the batch against itself, to the memory term (``loss = L(batch, batch) +
    XBM.WEIGHT · L(batch, memory)``, XBM.WEIGHT = 1; the memory already holds the batch, so in-batch pairs
    count twice there). ``in_batch_weight: 1`` gives that sum with the memory term's weight 1.

    Differences from the paper: PML averages each of the positive and negative terms over its
    non-zero pairs (the authors' code sums the pair terms and divides by the batch size); the
    paper enables the memory only after a first phase of training, once the embedding drifts
    slowly (here the memory is used from the first iteration).

    Memory size: the paper uses a large fraction of the training set on SOP and In-shop; with
    our 32-image batches we default to 1024 (PML's default, 32 batches) and search [128, 8192]
    (log, 1024 at its geometric centre). The memory must hold at least one batch.
    """
    contrastive = losses.ContrastiveLoss(pos_margin=hp["pos_margin"], neg_margin=hp["neg_margin"],
                                         distance=CosineSimilarity())
    loss = losses.CrossBatchMemory(loss=contrastive, embedding_size=ctx.embedding_dim,
                                   memory_size=hp["memory_size"])
    return MemoryWithBatchTerm(loss, contrastive, float(hp["in_batch_weight"]))


class MemoryWithBatchTerm(PMLMethod):
    """A cross-batch memory loss plus ``in_batch_weight`` times its inner loss on the batch alone."""

    def __init__(self, memory_loss: torch.nn.Module, batch_loss: torch.nn.Module, in_batch_weight: float) -> None:
        super().__init__(memory_loss)
        self.batch_loss = batch_loss
        self.in_batch_weight = in_batch_weight

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor,
                indices: Optional[torch.Tensor] = None) -> torch.Tensor:
        loss = self.loss(embeddings, labels)
        if self.in_batch_weight:
            loss = loss + self.in_batch_weight * self.batch_loss(embeddings, labels)
        return loss
