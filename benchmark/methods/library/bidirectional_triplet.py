"""The lecture's cross-modal alignment loss: a triplet loss in both directions between two modalities."""

from __future__ import annotations

import torch

from benchmark.methods.base import Method, MethodContext
from benchmark.methods.cross_modal import triplet_hinge
from benchmark.methods.registry import register_method
from benchmark.methods.search_space import Float


class BidirectionalTriplet(Method):
    """L = L1 + L2 + w (L_A + L_B): L1 anchors in A against positives and negatives in B, L2 the reverse,
    L_A and L_B the within-domain triplet losses (weight ``within_weight``; 0 leaves them out)."""

    def __init__(self, margin: float, within_weight: float) -> None:
        super().__init__()
        self.margin, self.within_weight = margin, within_weight

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices=None) -> torch.Tensor:
        """One domain alone: its within-domain triplet loss."""
        return triplet_hinge(embeddings, labels, embeddings, labels, self.margin, exclude_self=True)

    def cross_modal_loss(self, emb_a: torch.Tensor, labels_a: torch.Tensor, emb_b: torch.Tensor,
                         labels_b: torch.Tensor) -> torch.Tensor:
        loss = (triplet_hinge(emb_a, labels_a, emb_b, labels_b, self.margin)
                + triplet_hinge(emb_b, labels_b, emb_a, labels_a, self.margin))
        if self.within_weight > 0:
            loss = loss + self.within_weight * (self(emb_a, labels_a) + self(emb_b, labels_b))
        return loss


@register_method(
    name="bidirectional_triplet", display_name="Bidir. Triplet",
    source="Kiros, Salakhutdinov, Zemel, 2014 (visual-semantic embedding); the lecture's L1 + L2",
    search_space={"margin": Float(0.01, 1.0), "within_weight": Float(0.0, 1.0)},
    defaults={"margin": 0.2, "within_weight": 0.0},
    cross_modal="native",
)
def bidirectional_triplet(hp: dict, ctx: MethodContext) -> BidirectionalTriplet:
    """max(0, m + d(a, p) − d(a, n)) averaged over every cross-modal triplet, in both directions (L1 + L2).

    L1: anchor from modality A, positive (same class) and negative (another class) from modality B; L2 the
    reverse; plus ``within_weight`` x the within-domain triplet losses of A and of B (0 by default: off).
    Distances are Euclidean between L2-normalised embeddings; the mean runs over all valid triplets of the
    batch (the formula as written, no mining). Paired (cross-modal) datasets only: on one domain it is the
    Triplet method.
    """
    return BidirectionalTriplet(margin=hp["margin"], within_weight=hp["within_weight"])
