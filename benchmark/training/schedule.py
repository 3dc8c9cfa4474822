"""The fold's epoch schedule: which epochs end with a validation, and when patience runs out (early stopping).

Two early-stopping rules (``training.early_stopping``):

* ``harness``: after every epoch, stop once ``epoch - best >= patience`` (the default elsewhere: it
  stops as soon as the patience is spent, without training epochs that are never validated);
* ``published``: the reality-check code's rule, tested at validation epochs only, stop once
  ``epoch - best > patience``. With the published validation intervals / patiences (2 / 9, 5 / 14,
  20 / 39) it stops after 5 / 3 / 2 validations without gain on CUB / Cars / SOP (``harness``: 4 / 2 / 1).

``best`` is the epoch of the best validation so far (0 before any).
"""

from __future__ import annotations

from typing import Callable, Optional

from benchmark.config import TrainingConfig

#: ``training.early_stopping`` names.
EARLY_STOPPING_RULES = ("harness", "published")


def validates_after(epoch: int, cfg: TrainingConfig) -> bool:
    """Every ``val_interval`` epochs, and after the last epoch."""
    return epoch % cfg.val_interval == 0 or epoch == cfg.max_epochs


def patience_ran_out(epoch: int, best_epoch: int, cfg: TrainingConfig) -> bool:
    """Whether training stops after ``epoch`` (only with epochs left to train), by ``cfg.early_stopping``."""
    if epoch >= cfg.max_epochs:
        return False
    if cfg.early_stopping == "published":
        return validates_after(epoch, cfg) and epoch - best_epoch > cfg.patience
    return epoch - best_epoch >= cfg.patience


def end_epoch(epoch: int, iteration: int, loss, *, cfg: TrainingConfig, validate: Callable[[], float], curve: list,
              best, bar, on_validation: Optional[Callable[[int, int, float], None]] = None,
              heartbeat: Optional[Callable[[], None]] = None) -> tuple[bool, bool]:
    """The end of a trained epoch, the same for every fold loop: validate when the schedule says so (append
    ``(epoch, iteration, value)`` to ``curve``, offer it to ``best``, a ``BestCheckpoint``, show it on ``bar``,
    a ``FoldProgress``, call ``on_validation``), then ``heartbeat``. Returns ``(validated, stop)``, ``stop``
    when patience ran out."""
    validated = validates_after(epoch, cfg)
    if validated:
        value = validate()
        curve.append((epoch, iteration, value))
        best.offer(epoch, value)
        bar.show(loss, best.value)
        if on_validation is not None:
            on_validation(epoch, iteration, value)
    if heartbeat is not None:
        heartbeat()
    return validated, patience_ran_out(epoch, best.epoch, cfg)
