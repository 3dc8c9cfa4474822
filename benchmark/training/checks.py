"""The training layer's part of a run's config: optimizer, regime, precision, memory-format and
early-stopping names."""

from __future__ import annotations

from benchmark.config import TrainingConfig, check_choice
from benchmark.training.optim import OPTIMIZERS
from benchmark.training.precision import AMP_MODES, MEMORY_FORMATS
from benchmark.training.schedule import EARLY_STOPPING_RULES

#: ``training.regime``: the trunk trains on images, or a cut of it runs once and its outputs are cached.
REGIMES = ("end_to_end", "frozen")


def check_training_section(t: TrainingConfig, path: str) -> None:
    """Names of one training section (``path`` is ``training`` or ``datasets[i].training``); else ConfigError."""
    check_choice(t.optimizer, tuple(OPTIMIZERS), f"{path}.optimizer")
    check_choice(t.regime, REGIMES, f"{path}.regime")
    check_choice(t.amp, AMP_MODES, f"{path}.amp")
    check_choice(t.memory_format, MEMORY_FORMATS, f"{path}.memory_format")
    check_choice(t.early_stopping, EARLY_STOPPING_RULES, f"{path}.early_stopping")
