"""A run's config from a preset or file and the CLI's narrowing flags (``load_run_config``)."""

from __future__ import annotations

import pytest

from benchmark.errors import RegistryError
from benchmark.methods import list_methods
from benchmark.protocol.run_config import load_run_config


def test_methods_all_on_the_command_line_means_every_method_as_in_a_file():
    cfg = load_run_config(preset="smoke", methods=["all"])
    assert cfg.methods == [spec.name for spec in list_methods()] and len(cfg.methods) > 2


def test_all_beside_other_names_is_not_a_method():
    with pytest.raises(RegistryError, match="unknown method 'all'"):
        load_run_config(preset="smoke", methods=["all", "contrastive"])
