"""Every config key carries its one-line help beside it (the configuration reference prints it)."""

from __future__ import annotations

import dataclasses

import pytest

from benchmark.config import (BenchmarkConfig, DatasetConfig, EvaluationConfig, FrozenConfig, ModelConfig,
                              ProtocolConfig, TrainingConfig, bounded, field_help, field_range)

SECTIONS = [BenchmarkConfig, ModelConfig, TrainingConfig, FrozenConfig, ProtocolConfig, EvaluationConfig,
            DatasetConfig]


@pytest.mark.parametrize("cls", SECTIONS, ids=lambda c: c.__name__)
def test_every_key_has_a_one_line_help(cls):
    for f in dataclasses.fields(cls):
        text = field_help(f)
        assert text.strip(), f"{cls.__name__}.{f.name}: declare it with doc(..., help=...) or bounded(..., help=...)"
        assert "\n" not in text and text.endswith("."), f"{cls.__name__}.{f.name}: help is one sentence line"


def test_every_section_is_checked():
    # a new section (a dataclass field of BenchmarkConfig) must join SECTIONS above
    nested = {f.default_factory for f in dataclasses.fields(BenchmarkConfig)
              if dataclasses.is_dataclass(f.default_factory)}
    assert nested <= set(SECTIONS)


@pytest.mark.parametrize("kwargs, expected", [
    ({"lo": 1}, ">= 1"),
    ({"lo": 0.0, "lo_open": True}, "> 0"),
    ({"lo": 0.0, "hi": 1.0, "hi_open": True}, "[0, 1)"),
    ({"lo": 0.0, "hi": 1.0, "lo_open": True, "hi_open": True}, "(0, 1)"),
    ({"lo": 0, "hi": 256, "keywords": ("auto",)}, "[0, 256] or auto"),
    ({"lo": 1e-6}, ">= 1e-06"),
])
def test_field_range_text(kwargs, expected):
    assert field_range(bounded(1, help="x.", **kwargs)) == expected


def test_seed_range_is_exact():
    seed = next(f for f in dataclasses.fields(BenchmarkConfig) if f.name == "seed")
    assert field_range(seed) == f"[0, {2**63 - 1}]"
