"""The model layer's part of a run's config: trunk names and frozen-regime cuts, checked by this layer."""

from __future__ import annotations

from benchmark.config import FrozenConfig, ModelConfig, check_choice
from benchmark.models.cached_trunk import CUTS
from benchmark.models.trunks import TRUNKS


def check_model_section(model: ModelConfig, frozen: FrozenConfig) -> None:
    """``model.trunk`` one of the trunks this layer builds, ``frozen.cut`` one of its cuts; else ConfigError."""
    check_choice(model.trunk, TRUNKS, "model.trunk")
    check_choice(frozen.cut, CUTS, "frozen.cut")
