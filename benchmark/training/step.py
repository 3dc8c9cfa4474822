"""One training iteration: the method's loss on a batch (under autocast), backward and the optimizer step.

The batch goes to the device in the step's layout; the loss is ``Method.training_step`` under the
precision's autocast; a diverged loss (``benchmark.training.divergence``) is not stepped on; with fp16
the loss is scaled for backward and the grad scaler steps (or skips) the optimizer.
"""

from __future__ import annotations

from typing import Optional

import torch

from benchmark.data.batch import Batch
from benchmark.methods.base import Method
from benchmark.models.embedding_model import TrunkModel
from benchmark.training.divergence import loss_diverged, scaler_gave_up
from benchmark.training.precision import Precision


class TrainingStep:
    """``step(model, batch)``: update the model on one batch; return its loss, or None when the fold diverged."""

    def __init__(self, method: Method, optimizer: torch.optim.Optimizer, precision: Precision,
                 device: torch.device) -> None:
        self.method, self.optimizer, self.precision, self.device = method, optimizer, precision, device
        self.scaler = precision.grad_scaler()

    def __call__(self, model: TrunkModel, batch: Batch) -> Optional[torch.Tensor]:
        images, labels, indices = batch.to(self.device, self.precision.memory_format)
        with self.precision.autocast():
            loss = self.method.training_step(model, images, labels, indices)
        if loss_diverged(loss):
            return None
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
            return loss
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return None if scaler_gave_up(self.scaler) else loss
