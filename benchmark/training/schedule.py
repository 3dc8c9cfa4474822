"""The fold's epoch schedule: which epochs end with a validation, and when patience runs out (early stopping)."""

from __future__ import annotations

from benchmark.config import TrainingConfig


def validates_after(epoch: int, cfg: TrainingConfig) -> bool:
    """Every ``val_interval`` epochs, and after the last epoch."""
    return epoch % cfg.val_interval == 0 or epoch == cfg.max_epochs


def patience_ran_out(epoch: int, best_epoch: int, cfg: TrainingConfig) -> bool:
    """``patience`` epochs since the best validation (epoch 0 before any), with epochs left to train."""
    return epoch - best_epoch >= cfg.patience and epoch < cfg.max_epochs
