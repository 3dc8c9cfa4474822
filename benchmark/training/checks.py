"""The training layer's part of a run's config: optimizer and regime names, checked by this layer."""

from __future__ import annotations

from benchmark.config import TrainingConfig, check_choice
from benchmark.training.optimizers import OPTIMIZERS

#: ``training.regime``: the trunk trains on images, or a cut of it runs once and its outputs are cached.
REGIMES = ("end_to_end", "frozen")


def check_training_section(t: TrainingConfig, path: str) -> None:
    """Names of one training section (``path`` is ``training`` or ``datasets[i].training``); else ConfigError."""
    check_choice(t.optimizer, tuple(OPTIMIZERS), f"{path}.optimizer")
    check_choice(t.regime, REGIMES, f"{path}.regime")
