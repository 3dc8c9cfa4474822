"""The built-in dataset's second modalities, generated from each class glyph's own parameters.

``load_builtin_paired(second_modality=..., **builtin_options)`` is ``load_builtin`` with a
``SecondModality`` (``benchmark.data.paired``) beside its images, ``second_per_class`` items per class:

* ``description`` (attribute -> image, the zero-shot setting): a class's *description* vector is derived
  deterministically from the parameters that generate its glyph: the 8 x 8 coverage map of the undeformed
  glyph (64 values) and its centred stroke control points (``max_strokes x 4 x 2`` = 32 values), 96 in
  all, plus independent Gaussian noise (std ``DESCRIPTION_NOISE``) per description, as two people's
  attribute annotations of one species differ.
* ``sketch`` (sketch -> photo): a clean rendering of the class glyph under its own small deformation
  (the images' control-point jitter and affine map at half their strength), with no background, colour
  or pixel noise, 16 x 16 pixels flattened (256 values) for the vector tower.

Items depend only on ``(seed, class, item)``: the same classes get the same items whatever the dataset's
size. They take milliseconds to generate and are not cached on disk.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import torch

from benchmark.checks import check_int
from benchmark.data.base import DataSource
from benchmark.data.builtin import (DEFAULT_STYLE, _DOMAIN_EVAL_SHAPES, _bezier, _coverage, _instance_points, _rng,
                                    check_builtin_options, class_strokes, load_builtin)
from benchmark.data.paired import PAIRED, SecondModality
from benchmark.data.tensor_sets import TensorSet
from benchmark.errors import ConfigError

#: ``second_modality`` option values.
SECOND_MODALITIES = ("description", "sketch")
DESCRIPTION_NOISE = 0.1
DESCRIPTION_GRID = 8
SKETCH_SIZE = 16
#: Random streams of the second modality (apart from the images' streams).
_KIND_SECOND = 7


def check_paired_options(options: dict, where: str = "") -> None:
    """``check_builtin_options`` plus ``second_modality`` (a known name) and ``second_per_class`` (>= 1)."""
    rest = {k: v for k, v in options.items() if k not in ("second_modality", "second_per_class")}
    check_builtin_options(rest, where)
    prefix = f"config key '{where}." if where else ""
    close = "'" if where else ""
    value = options.get("second_modality")
    if value is not None and value not in SECOND_MODALITIES:
        raise ConfigError(f"{prefix}second_modality{close} must be one of {', '.join(SECOND_MODALITIES)} "
                          f"(or absent), got {value!r}")
    if "second_per_class" in options:
        check_int(f"{prefix}second_per_class{close}", options["second_per_class"], 1, 10_000)


def class_descriptions(strokes: np.ndarray, classes: np.ndarray, seed: int, per_class: int) -> np.ndarray:
    """Description vectors (``len(classes) * per_class`` x 96, float32) of ``classes``, ``per_class`` each, in
    class order; ``strokes`` is ``class_strokes``' output indexed by class id."""
    own = strokes[classes]                                                   # C x S x 4 x 2
    width = np.full(len(classes), 2.0 * DESCRIPTION_GRID / 32.0)
    grid = _coverage(_bezier(own, DEFAULT_STYLE.samples_per_stroke), width, DESCRIPTION_GRID)
    clean = np.concatenate([grid.reshape(len(classes), -1), (own - 0.5).reshape(len(classes), -1)], axis=1)
    out = np.repeat(clean, per_class, axis=0)
    for i, c in enumerate(classes.tolist()):
        noise = _rng(seed, _KIND_SECOND, 0, c).normal(0.0, DESCRIPTION_NOISE, (per_class, clean.shape[1]))
        out[i * per_class:(i + 1) * per_class] += noise
    return out.astype(np.float32)


def class_sketches(strokes: np.ndarray, classes: np.ndarray, seed: int, per_class: int) -> np.ndarray:
    """Sketches (``len(classes) * per_class`` x 256, float32 coverage in [0, 1]) of ``classes``, in class order."""
    style = dataclasses.replace(DEFAULT_STYLE, point_jitter=DEFAULT_STYLE.point_jitter / 2,
                                rotation_deg=DEFAULT_STYLE.rotation_deg / 2, log_scale=DEFAULT_STYLE.log_scale / 2,
                                aspect=DEFAULT_STYLE.aspect / 2, shear=DEFAULT_STYLE.shear / 2,
                                translation=DEFAULT_STYLE.translation / 2)
    out = []
    for c in classes.tolist():
        points, _ = _instance_points(np.repeat(strokes[c][None], per_class, axis=0), _rng(seed, _KIND_SECOND, 1, c),
                                     style)
        width = np.full(per_class, 2.0 * SKETCH_SIZE / 32.0)
        out.append(_coverage(points, width, SKETCH_SIZE).reshape(per_class, -1))
    return np.concatenate(out).astype(np.float32)


def second_modality_arrays(kind: str, *, seed: int, num_classes: int, per_class: int) -> dict[str, np.ndarray]:
    """``values`` and ``labels`` of every evaluation class's ``kind`` items (classes 0 .. num_classes - 1)."""
    strokes = class_strokes(seed, _DOMAIN_EVAL_SHAPES, num_classes, DEFAULT_STYLE)
    classes = np.arange(num_classes, dtype=np.int64)
    make = class_descriptions if kind == "description" else class_sketches
    return {"values": make(strokes, classes, seed, per_class), "labels": np.repeat(classes, per_class)}


def load_builtin_paired(*, second_modality: Optional[str] = None, second_per_class: int = 4,
                        **options: Any) -> DataSource:
    """``load_builtin(**options)``, with its ``second_modality`` (see the module docstring) when one is named."""
    check_paired_options({**options, "second_modality": second_modality, "second_per_class": second_per_class})
    source = load_builtin(**options)
    if second_modality is None:
        return source
    seed, n = source.info["seed"], int(source.test.labels.max()) + 1
    arrays = second_modality_arrays(second_modality, seed=seed, num_classes=n, per_class=second_per_class)
    train_classes = np.unique(source.train.labels)
    is_train = np.isin(arrays["labels"], train_classes)

    def tensor_set(mask: np.ndarray) -> TensorSet:
        return TensorSet(torch.from_numpy(np.ascontiguousarray(arrays["values"][mask])), arrays["labels"][mask])

    source.info[PAIRED] = SecondModality("image", second_modality, tensor_set(is_train), tensor_set(~is_train))
    return source
