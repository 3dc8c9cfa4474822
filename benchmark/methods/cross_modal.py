"""A registered method in its cross-modal mode: the loss of a batch holding both modalities.

``cross_modal_loss(spec, method)`` wraps the ``Method`` that ``spec`` builds into a ``CrossModalLoss``,
whose ``forward(emb_a, labels_a, emb_b, labels_b)`` is the batch's loss, by the spec's ``cross_modal``
mode (``benchmark.methods.cross_modal_modes``). ``why_not_cross_modal(spec)`` is the one line a config
check prints for a method that has no cross-modal mode. ``triplet_hinge`` is the lecture's triplet loss
max(0, m + d(a, p) - d(a, n)) over every triplet of anchors from one set and positives and negatives from
another, the building block of the ``bidirectional_triplet`` method.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.methods.base import Method, PMLMethod
from benchmark.methods.registry import MethodSpec


def why_not_cross_modal(spec: MethodSpec) -> Optional[str]:
    """Why ``spec`` cannot train two modalities (None when it can)."""
    if spec.cross_modal is None:
        return (f"method {spec.name!r} has no cross-modal mode (it is not a pair-, tuple- or proxy-based loss on "
                f"embeddings alone; see 'dml-bench list-methods')")
    return None


def triplet_hinge(anchors: torch.Tensor, anchor_labels: torch.Tensor, refs: torch.Tensor, ref_labels: torch.Tensor,
                  margin: float, exclude_self: bool = False) -> torch.Tensor:
    """Mean of max(0, m + d(a, p) - d(a, n)) over every triplet: anchor a from ``anchors``, positive p (same
    class) and negative n (another class) from ``refs``; Euclidean distance between L2-normalised embeddings.
    ``exclude_self``: ``refs`` is ``anchors`` and an anchor is not its own positive. 0 when there is no triplet."""
    a, r = F.normalize(anchors, dim=1), F.normalize(refs, dim=1)
    d = torch.cdist(a, r)
    same = anchor_labels[:, None] == ref_labels[None, :]
    pos = same.clone()
    if exclude_self:
        pos.fill_diagonal_(False)
    neg = ~same
    valid = pos[:, :, None] & neg[:, None, :]
    if not valid.any():
        return d.sum() * 0.0
    losses = F.relu(margin + d[:, :, None] - d[:, None, :])
    return losses[valid].mean()


class CrossModalLoss(nn.Module):
    """``forward(emb_a, labels_a, emb_b, labels_b)``: the batch's loss; the wrapped method's parameters and
    learning rate are its own (``optimizer_groups``)."""

    def __init__(self, method: Method, mode: str) -> None:
        super().__init__()
        self.method, self.mode = method, mode

    def forward(self, emb_a: torch.Tensor, labels_a: torch.Tensor, emb_b: torch.Tensor,
                labels_b: torch.Tensor) -> torch.Tensor:
        m = self.method
        if self.mode == "native":
            return m.cross_modal_loss(emb_a, labels_a, emb_b, labels_b)
        if self.mode == "shared":
            return m(emb_a, labels_a) + m(emb_b, labels_b)
        return self._reference(emb_a, labels_a, emb_b, labels_b) + self._reference(emb_b, labels_b, emb_a, labels_a)

    def _reference(self, q: torch.Tensor, ql: torch.Tensor, r: torch.Tensor, rl: torch.Tensor) -> torch.Tensor:
        m = self.method
        tuples = m.miner(q, ql, r, rl) if m.miner is not None else None
        return m.loss(q, ql, tuples, r, rl)

    def optimizer_groups(self, default_lr: float, weight_decay: float) -> list[dict]:
        return self.method.optimizer_groups(default_lr, weight_decay)


def cross_modal_loss(spec: MethodSpec, method: Method) -> CrossModalLoss:
    """``method`` (built by ``spec``) in its cross-modal mode; ``ValueError`` when it has none."""
    why = why_not_cross_modal(spec)
    if why:
        raise ValueError(why)
    if spec.cross_modal == "reference" and not isinstance(method, PMLMethod):
        raise ValueError(f"method {spec.name!r}: the reference mode needs a pytorch-metric-learning loss "
                         f"(PMLMethod), got {type(method).__name__}")
    if spec.cross_modal == "native" and not hasattr(method, "cross_modal_loss"):
        raise ValueError(f"method {spec.name!r}: the native mode needs a cross_modal_loss method")
    return CrossModalLoss(method, spec.cross_modal)
