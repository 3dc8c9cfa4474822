"""A run's config from a preset or file and the CLI's narrowing flags (``load_run_config``)."""

from __future__ import annotations

import pytest

from benchmark.errors import RegistryError
from benchmark.methods import list_methods
from benchmark.protocol.run_config import load_run_config


def test_methods_all_on_the_command_line_means_every_method_as_in_a_file():
    cfg = load_run_config(preset="smoke", methods=["all"])
    single = [spec.name for spec in list_methods() if spec.cross_modal != "native"]  # one-modality datasets
    assert cfg.methods == single and len(cfg.methods) > 2


def test_methods_all_on_paired_datasets_means_every_method_with_a_cross_modal_mode():
    cfg = load_run_config(preset="cross-modal")
    assert cfg.methods == [spec.name for spec in list_methods() if spec.cross_modal is not None]
    assert "bidirectional_triplet" in cfg.methods and "proxy_anchor" in cfg.methods and "dcml" not in cfg.methods


def test_all_beside_other_names_is_not_a_method():
    with pytest.raises(RegistryError, match="unknown method 'all'"):
        load_run_config(preset="smoke", methods=["all", "contrastive"])
