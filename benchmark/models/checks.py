"""The model layer's part of a run's config: trunk names, weights files and frozen-regime cuts."""

from __future__ import annotations

from benchmark.config import FrozenConfig, ModelConfig, check_choice
from benchmark.models.cached_trunk import CUTS
from benchmark.models.names import check_trunk_name, check_weights_key


def check_model_section(model: ModelConfig, frozen: FrozenConfig) -> None:
    """A trunk this layer builds (built-in or ``timm:<name>``), a weights file it can read, a known cut."""
    check_trunk_name(model.trunk, "model.trunk")
    check_weights_key(model.trunk, model.weights, model.pretrained, "model.weights")
    check_choice(frozen.cut, CUTS, "frozen.cut")
