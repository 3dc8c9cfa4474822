"""When a fold counts as diverged: its loss is not finite, or fp16's grad scaler gave up.

A non-finite loss ends the fold (status ``diverged``) before that iteration's step, in every precision.
With fp16 a step whose scaled gradients overflow is skipped and the scale halved: that is the grad
scaler's normal work, not divergence (the next steps go on at the lower scale). But when the gradients
are not finite at any scale the scaler only halves it, step after step, and training silently stops
while the loop runs on; so the fold also counts as diverged once the scale has fallen to
``MIN_GRAD_SCALE`` (from the initial 2^16: 24 overflowing steps with no finite one in between).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

MIN_GRAD_SCALE = 2.0 ** -8


def loss_diverged(loss: torch.Tensor) -> bool:
    """True when ``loss`` (a scalar) is NaN or infinite (reads the value: a device sync on CUDA; on a CPU
    reading the one value costs a twentieth of a ``torch.isfinite`` call)."""
    return not math.isfinite(loss.item())


def scaler_gave_up(scaler: Optional[torch.amp.GradScaler]) -> bool:
    """True when fp16's grad scaler has halved its scale to ``MIN_GRAD_SCALE`` (False without a scaler)."""
    return scaler is not None and scaler.get_scale() <= MIN_GRAD_SCALE
