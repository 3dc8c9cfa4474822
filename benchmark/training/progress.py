"""The fold's progress bar: one tick per iteration, the loss and the best validation MAP@R beside it.

The bar shows only on a terminal (or not at all with ``progress=False``): logs and CI output keep the
run's overall bar alone. The loss is read (``loss.item()``, a device sync on CUDA) only when the bar
shows, every ``POSTFIX_EVERY`` iterations and after each validation.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

POSTFIX_EVERY = 10


class FoldProgress:
    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.bar = tqdm(total=total, desc=desc, disable=None if enabled else True, leave=False, dynamic_ncols=True)

    def step(self, iteration: int, loss: torch.Tensor, best: float) -> None:
        """One iteration done (``iteration`` counts from 1); ``best`` is -inf before any validation."""
        self.bar.update(1)
        if iteration % POSTFIX_EVERY == 0:
            self.show(loss, max(best, 0.0))

    def show(self, loss: torch.Tensor, best: float) -> None:
        if not self.bar.disable:
            self.bar.set_postfix(loss=f"{loss.item():.4f}", best_val=f"{best:.4f}")

    def close(self) -> None:
        self.bar.close()
