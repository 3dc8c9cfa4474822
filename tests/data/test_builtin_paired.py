"""The built-in dataset's second modalities: deterministic, derived from each class glyph, over the images' classes."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.builtin import DEFAULT_STYLE, _DOMAIN_EVAL_SHAPES, class_strokes
from benchmark.data.builtin_paired import (DESCRIPTION_NOISE, check_paired_options, class_descriptions,
                                           second_modality_arrays)
from benchmark.data.catalog import check_dataset_entry, load_dataset
from benchmark.data.paired import paired_of
from benchmark.errors import ConfigError


@pytest.mark.parametrize("kind, dim", [("description", 96), ("sketch", 256)])
def test_items_are_deterministic_and_depend_only_on_their_class(kind, dim):
    small = second_modality_arrays(kind, seed=3, num_classes=8, per_class=3)
    large = second_modality_arrays(kind, seed=3, num_classes=12, per_class=3)
    assert small["values"].shape == (24, dim) and small["labels"].tolist() == np.repeat(np.arange(8), 3).tolist()
    np.testing.assert_array_equal(small["values"], large["values"][:24])
    other = second_modality_arrays(kind, seed=4, num_classes=8, per_class=3)
    assert not np.allclose(small["values"], other["values"])


def test_a_description_is_its_glyphs_parameters_plus_noise():
    strokes = class_strokes(0, _DOMAIN_EVAL_SHAPES, 6, DEFAULT_STYLE)
    values = class_descriptions(strokes, np.arange(6), seed=0, per_class=50)
    control_points = (strokes - 0.5).reshape(6, -1)
    per_class = values.reshape(6, 50, -1)
    # the mean of many descriptions recovers the control points; the spread is the description noise
    np.testing.assert_allclose(per_class[:, :, 64:].mean(axis=1), control_points, atol=4 * DESCRIPTION_NOISE / 7)
    assert per_class[:, :, 64:].std(axis=1).mean() == pytest.approx(DESCRIPTION_NOISE, rel=0.15)


def test_the_builtin_dataset_carries_its_second_modality_over_the_same_classes():
    source = load_dataset("builtin", num_classes=8, images_per_class=3, second_modality="sketch",
                          second_per_class=2, cache=False)
    second = paired_of(source)
    assert set(second.train.labels.tolist()) == set(source.train.labels.tolist())
    assert set(second.test.labels.tolist()) == set(source.test.labels.tolist())
    assert second.directions() == ("image-to-sketch", "sketch-to-image")
    assert paired_of(load_dataset("builtin", num_classes=8, images_per_class=3, cache=False)) is None


def test_bad_second_modality_options_name_the_config_key():
    with pytest.raises(ConfigError, match=r"config key 'datasets\[0\].options.second_modality' must be one of "
                                          r"description, sketch"):
        check_dataset_entry("builtin", None, {"second_modality": "speech"}, "datasets[0]")
    with pytest.raises(ConfigError, match="second_per_class' must be an integer in"):
        check_paired_options({"second_per_class": 0}, "datasets[0].options")
