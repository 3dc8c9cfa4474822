"""Warm-up: the trunk frozen for the first epochs while the rest of the model and the method's parameters train.

A method asks for it with ``extra["warmup_epochs"]`` (ProxyNCA++). Only trunk parameters that were
trainable are released after the warm-up, and every one gets its own ``requires_grad`` back when the
fold ends, however it ends.
"""

from __future__ import annotations

from torch import nn


class TrunkWarmup:
    """``start_epoch(epoch)`` before each epoch; ``restore()`` when the fold ends."""

    def __init__(self, trunk: nn.Module, epochs: int) -> None:
        self.epochs = epochs
        self.params = list(trunk.parameters())
        self.trainable = [p.requires_grad for p in self.params]

    def start_epoch(self, epoch: int) -> None:
        if self.epochs:
            for p, trainable in zip(self.params, self.trainable):
                p.requires_grad_(trainable and epoch > self.epochs)

    def restore(self) -> None:
        for p, trainable in zip(self.params, self.trainable):
            p.requires_grad_(trainable)
