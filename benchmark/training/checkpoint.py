"""The best-validation checkpoint of a fold: the weights at its best validation MAP@R so far.

Only trained epochs compete: the untrained model is the "Pretrained" row, so the first validation
always becomes the checkpoint. A fold that ends before any validation (it diverged at once) keeps its
initial weights and scores 0.
"""

from __future__ import annotations

import copy
import math

from torch import nn


class BestCheckpoint:
    """``offer(epoch, value)`` after each validation; ``restore()`` loads the best weights into the model."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.value = -math.inf
        self.epoch = 0
        self.state = copy.deepcopy(model.state_dict())

    def offer(self, epoch: int, value: float) -> bool:
        """Keep the model's current weights if ``value`` beats the best so far; True when it did."""
        if not value > self.value:  # a NaN never becomes the checkpoint
            return False
        self.value, self.epoch = value, epoch
        self.state = copy.deepcopy(self.model.state_dict())
        return True

    @property
    def score(self) -> float:
        """The best validation value, 0 when there was no validation."""
        return self.value if math.isfinite(self.value) else 0.0

    def restore(self) -> nn.Module:
        self.model.load_state_dict(self.state)
        return self.model
