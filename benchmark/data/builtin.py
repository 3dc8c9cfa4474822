"""The built-in dataset: procedurally generated glyphs on textured backgrounds (no download).

Every class is a "glyph" made of a few random cubic Bezier strokes in the unit square. An image
of a class is that glyph under a random per-instance deformation (control-point jitter, rotation,
anisotropic scale, shear, translation), stroke width and foreground colour, drawn anti-aliased on
a background picked from a small set of *contexts* (gradients, stripes, checkers, rings, each with
its own hue), plus pixel noise. Everything is generated with numpy, vectorised over batches of
images, deterministically from ``seed``; a whole dataset takes a few seconds and is cached as a
compressed ``.npz`` under ``cache_dir() / "builtin"``.

* Evaluation classes ``0 .. num_classes - 1``: the first half (sorted) are the training classes
  (train + validation, split into folds later), the second half the test classes.
* A disjoint pool of extra classes (different shape seeds) used only to pretrain the small CNN
  trunk (``load_pretrain_pool``), so that "Pretrained" means a trunk that never saw the
  evaluation classes.
* ``context_bias`` (the DCML "context prior"): on training classes an image gets its class's own
  context with that probability, otherwise a uniformly random one; test classes and the pool
  always get uniformly random contexts. The per-image context ids are in
  ``DataSource.info["train_contexts"]`` / ``info["test_contexts"]``.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.checks import check_int
from benchmark.constants import cache_dir
from benchmark.data.base import ArrayImageSet, BatchTransform, DataSource, Transform
from benchmark.errors import ConfigError
from benchmark.io import write_cache_file

#: Bumped whenever the generated images change for the same parameters (invalidates caches).
GENERATOR_VERSION = 1

DEFAULT_NUM_CLASSES = 400
DEFAULT_IMAGES_PER_CLASS = 24
#: The pretraining pool: classes disjoint from the evaluation classes (other shape seeds).
POOL_NUM_CLASSES = 200
POOL_IMAGES_PER_CLASS = 24
#: Normalisation applied by both transforms (per channel, images in [0, 1]).
NORM_MEAN = (0.5, 0.5, 0.5)
NORM_STD = (0.25, 0.25, 0.25)

MIN_CLASSES = 8  # 4 training classes at least: one per cross-validation fold
MAX_CLASSES = 100_000
MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 128

# Independent random streams, so that e.g. ``context_bias`` changes backgrounds only.
_DOMAIN_EVAL_SHAPES = 0
_DOMAIN_POOL_SHAPES = 1
_DOMAIN_CONTEXTS = 2
_STREAM_GEOMETRY = 10
_STREAM_CONTEXT_CHOICE = 11
_STREAM_BACKGROUND = 12
_STREAM_NOISE = 13
_KIND_EVAL = 0
_KIND_POOL = 1


@dataclass(frozen=True)
class GlyphStyle:
    """Knobs of the generator (checked with ``python benchmarks/calibrate_builtin.py``, on training classes).

    Lengths are in units of the image side (the glyph lives in the unit square), widths in pixels
    of a 32 x 32 image (scaled with ``image_size``).
    """

    min_strokes: int = 2
    max_strokes: int = 4
    stroke_margin: float = 0.12          # control points drawn in [margin, 1 - margin]
    min_stroke_span: float = 0.3         # start-to-end distance of a stroke, at least
    samples_per_stroke: int = 9          # points along each Bezier (segments = samples - 1)
    point_jitter: float = 0.045          # per-instance std of every control point
    rotation_deg: float = 14.0           # std of the per-instance rotation
    log_scale: float = 0.1               # std of the per-instance log scale (global)
    aspect: float = 0.08                 # std of the per-instance log aspect ratio
    shear: float = 0.12                  # std of the per-instance shear
    translation: float = 0.07            # per-instance translation, uniform in +-
    min_width: float = 1.3               # stroke width in pixels (32 x 32), uniform in range
    max_width: float = 2.6
    num_contexts: int = 12
    context_colour_jitter: float = 0.06  # per-instance shift of the background colours
    noise_std: float = 0.05              # Gaussian pixel noise
    clutter_strokes: int = 0             # extra random strokes per image, not tied to the class


DEFAULT_STYLE = GlyphStyle()


# --------------------------------------------------------------------------------------------
# Argument validation


def _check_bias(value: object, name: str = "context_bias") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_seed(value: object, name: str = "seed") -> int:
    return check_int(name, value, 0, 2**63 - 1)


def check_builtin_options(options: dict, where: str = "") -> None:
    """Check ``load_builtin``'s keyword arguments without generating anything; an error names the
    config key ``<where>.<option>`` (e.g. ``datasets[0].options.num_classes``) when ``where`` is given."""
    checks = {"seed": lambda v, n: _check_seed(v, n),
              "num_classes": lambda v, n: check_int(n, v, MIN_CLASSES, MAX_CLASSES),
              "images_per_class": lambda v, n: check_int(n, v, 2, 10_000),
              "context_bias": lambda v, n: _check_bias(v, n),
              "image_size": lambda v, n: check_int(n, v, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)}
    for key, value in options.items():
        name = f"config key '{where}.{key}'" if where else key
        if key in checks:
            checks[key](value, name)
        elif key == "cache" and not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")


# --------------------------------------------------------------------------------------------
# Random glyph classes and contexts


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def class_strokes(seed: int, domain: int, num_classes: int, style: GlyphStyle = DEFAULT_STYLE,
                  first_class: int = 0) -> np.ndarray:
    """Control points of every class's strokes, ``num_classes x max_strokes x 4 x 2``.

    A class with fewer strokes than ``max_strokes`` repeats its first stroke in the unused slots
    (drawing a stroke twice changes nothing). Class ``c`` depends only on ``(seed, domain, c)``.
    """
    m = style.stroke_margin
    out = np.empty((num_classes, style.max_strokes, 4, 2), dtype=np.float64)
    for i in range(num_classes):
        rng = _rng(seed, domain, first_class + i)
        n = int(rng.integers(style.min_strokes, style.max_strokes + 1))
        strokes = []
        while len(strokes) < n:
            p = rng.uniform(m, 1.0 - m, size=(4, 2))
            if np.linalg.norm(p[3] - p[0]) >= style.min_stroke_span:
                strokes.append(p)
        strokes += [strokes[0]] * (style.max_strokes - n)
        out[i] = np.stack(strokes)
    return out


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, all in [0, 1]; returns ``... x 3``."""
    h = np.asarray(h) % 1.0
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
    return np.asarray(v)[..., None] - np.asarray(v)[..., None] * np.asarray(s)[..., None] * np.clip(
        np.minimum(k, 4.0 - k), 0.0, 1.0)


@dataclass(frozen=True)
class Contexts:
    """The background contexts: pattern type, hue colours, orientation and frequency of each."""

    kind: np.ndarray      # K ints: 0 gradient, 1 stripes, 2 checker, 3 rings
    colour_a: np.ndarray  # K x 3
    colour_b: np.ndarray  # K x 3
    angle: np.ndarray     # K radians
    freq: np.ndarray      # K cycles per image side

    def __len__(self) -> int:
        return len(self.kind)


def make_contexts(seed: int, style: GlyphStyle = DEFAULT_STYLE) -> Contexts:
    """``style.num_contexts`` backgrounds with evenly spaced hues and the four pattern types."""
    k = style.num_contexts
    rng = _rng(seed, _DOMAIN_CONTEXTS)
    hue = (np.arange(k) / k + rng.uniform(0, 1)) % 1.0
    hue = hue[rng.permutation(k)]
    kind = np.arange(k) % 4
    colour_a = _hsv_to_rgb(hue, rng.uniform(0.45, 0.7, k), rng.uniform(0.6, 0.72, k))
    colour_b = _hsv_to_rgb(hue + rng.uniform(-0.06, 0.06, k), rng.uniform(0.5, 0.8, k), rng.uniform(0.36, 0.48, k))
    angle = rng.uniform(0, math.pi, k)
    freq = rng.uniform(2.0, 4.5, k)
    return Contexts(kind, colour_a, colour_b, angle, freq)


# --------------------------------------------------------------------------------------------
# Rendering


def _bezier(ctrl: np.ndarray, samples: int) -> np.ndarray:
    """Points along cubic Beziers: ``ctrl`` is ``... x 4 x 2``, returns ``... x samples x 2``."""
    t = np.linspace(0.0, 1.0, samples)[:, None]
    b = np.stack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3], axis=0)  # 4 x S x 1
    return np.einsum("jsx,...jd->...sd", b, ctrl)


def _coverage(points: np.ndarray, width: np.ndarray, size: int, chunk: int = 32) -> np.ndarray:
    """Anti-aliased stroke coverage ``n x size x size`` of polylines ``n x strokes x samples x 2``.

    Distance from every pixel centre to the nearest segment (in pixels), then a one-pixel ramp
    around half the stroke width. Small chunks with in-place operations keep the temporaries in
    the CPU cache (about 4x faster than one big broadcast).
    """
    n = points.shape[0]
    p = points.astype(np.float32) * size
    a = p[:, :, :-1].reshape(n, -1, 2)
    ab = p[:, :, 1:].reshape(n, -1, 2) - a
    inv_len2 = (1.0 / np.maximum((ab ** 2).sum(-1), 1e-6)).astype(np.float32)[..., None]  # n x M x 1
    centres = np.arange(size, dtype=np.float32) + 0.5
    px = np.tile(centres, size)                                                              # P
    py = np.repeat(centres, size)
    d2 = np.empty((n, size * size), dtype=np.float32)
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        abx, aby = ab[sl, :, 0:1], ab[sl, :, 1:2]
        apx = px - a[sl, :, 0:1]                                                             # c x M x P
        apy = py - a[sl, :, 1:2]
        t = apx * abx
        t += apy * aby
        t *= inv_len2[sl]
        np.clip(t, 0.0, 1.0, out=t)
        apx -= t * abx
        apy -= t * aby
        apx *= apx
        apy *= apy
        apx += apy
        d2[sl] = apx.min(axis=1)
    d = np.sqrt(d2, out=d2)
    cov = np.clip(width[:, None].astype(np.float32) * 0.5 + 0.5 - d, 0.0, 1.0)
    return cov.reshape(n, size, size)


def _backgrounds(ctx: np.ndarray, contexts: Contexts, size: int, rng: np.random.Generator,
                 style: GlyphStyle) -> np.ndarray:
    """Background images ``n x size x size x 3`` of contexts ``ctx`` with per-image variation."""
    n = len(ctx)
    c = (np.arange(size, dtype=np.float64) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")                                  # size x size
    angle = contexts.angle[ctx] + rng.normal(0, 0.12, n)
    freq = contexts.freq[ctx] * rng.uniform(0.9, 1.1, n)
    phase = rng.uniform(0, 2 * math.pi, n)
    centre = rng.uniform(-0.3, 0.3, (n, 2))
    ca, sa = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u = xx[None] * ca + yy[None] * sa
    v = -xx[None] * sa + yy[None] * ca
    f2pi = 2 * math.pi * freq[:, None, None]
    ph = phase[:, None, None]
    field = np.empty((n, size, size))
    kind = contexts.kind[ctx]
    m = kind == 0  # linear gradient, random offset
    field[m] = np.clip(0.5 + 1.2 * u[m] + 0.25 * np.sin(ph[m]), 0, 1)
    m = kind == 1  # stripes
    field[m] = 0.5 + 0.5 * np.sin(f2pi[m] * u[m] + ph[m])
    m = kind == 2  # soft checkerboard
    field[m] = 0.5 + 0.5 * np.tanh(3.0 * np.sin(f2pi[m] * u[m] * 0.7 + ph[m]) * np.sin(f2pi[m] * v[m] * 0.7))
    m = kind == 3  # rings around a random centre
    r = np.sqrt((xx[None] - centre[:, 0, None, None]) ** 2 + (yy[None] - centre[:, 1, None, None]) ** 2)
    field[m] = 0.5 + 0.5 * np.sin(f2pi[m] * r[m] + ph[m])
    jitter = style.context_colour_jitter
    col_a = np.clip(contexts.colour_a[ctx] + rng.normal(0, jitter, (n, 3)), 0, 1)
    col_b = np.clip(contexts.colour_b[ctx] + rng.normal(0, jitter, (n, 3)), 0, 1)
    f = field[..., None]
    return f * col_a[:, None, None, :] + (1 - f) * col_b[:, None, None, :]


def _instance_points(strokes: np.ndarray, rng: np.random.Generator, style: GlyphStyle) -> tuple[np.ndarray, np.ndarray]:
    """Deform each image's glyph: control-point jitter, then a random affine map about the centre.

    Returns polyline points ``n x strokes x samples x 2`` and stroke widths ``n`` (in 32-px units).
    """
    n = strokes.shape[0]
    ctrl = strokes + rng.normal(0, style.point_jitter, strokes.shape)
    theta = np.deg2rad(rng.normal(0, style.rotation_deg, n))
    scale = np.exp(rng.normal(0, style.log_scale, n))
    aspect = np.exp(rng.normal(0, style.aspect, n))
    shear = rng.normal(0, style.shear, n)
    shift = rng.uniform(-style.translation, style.translation, (n, 2))
    width = rng.uniform(style.min_width, style.max_width, n)
    cos, sin = np.cos(theta), np.sin(theta)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)             # n x 2 x 2
    sh = np.zeros((n, 2, 2))
    sh[:, 0, 0] = scale * aspect
    sh[:, 0, 1] = shear * scale
    sh[:, 1, 1] = scale / aspect
    mat = rot @ sh
    centred = ctrl - 0.5
    ctrl = np.einsum("nij,nskj->nski", mat, centred) + 0.5 + shift[:, None, None, :]
    return _bezier(ctrl, style.samples_per_stroke), width


def render_glyphs(strokes: np.ndarray, ctx: np.ndarray, contexts: Contexts, *, image_size: int,
                  geometry_rng: np.random.Generator, background_rng: np.random.Generator,
                  noise_rng: np.random.Generator, style: GlyphStyle = DEFAULT_STYLE,
                  chunk: int = 256) -> np.ndarray:
    """Images ``n x size x size x 3`` (uint8) of glyphs ``strokes[i]`` on contexts ``ctx[i]``."""
    n = strokes.shape[0]
    out = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    px_scale = image_size / 32.0
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        k = sl.stop - sl.start
        points, width = _instance_points(strokes[sl], geometry_rng, style)
        if style.clutter_strokes:
            m = style.stroke_margin
            extra = geometry_rng.uniform(m - 0.1, 1.1 - m, (k, style.clutter_strokes, 4, 2))
            points = np.concatenate([points, _bezier(extra, style.samples_per_stroke)], axis=1)
        cov = _coverage(points, width * px_scale, image_size)[..., None]
        bg = _backgrounds(ctx[sl], contexts, image_size, background_rng, style)
        dark = background_rng.random(k) < 0.5
        fg = np.where(dark[:, None], background_rng.uniform(0.0, 0.28, (k, 3)),
                      background_rng.uniform(0.78, 1.0, (k, 3)))
        img = (bg * (1 - cov) + fg[:, None, None, :] * cov).astype(np.float32)
        img += noise_rng.standard_normal(img.shape, dtype=np.float32) * np.float32(style.noise_std)
        out[sl] = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------------------------
# Datasets


def _assign_contexts(labels: np.ndarray, class_context: np.ndarray, bias: float, num_contexts: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Per image: the class's own context with probability ``bias``, else a uniformly random one."""
    own = rng.random(len(labels)) < bias
    rand = rng.integers(0, num_contexts, len(labels))
    return np.where(own, class_context[labels], rand).astype(np.int64)


def generate_builtin_arrays(*, seed: int, num_classes: int, images_per_class: int, context_bias: float,
                            image_size: int, style: GlyphStyle = DEFAULT_STYLE) -> dict[str, np.ndarray]:
    """The evaluation classes' arrays (uncached): images, labels and context ids of train and test.

    Also ``class_context`` (the training-time context of every class, used when ``context_bias``
    > 0). Images are sorted by class.
    """
    n_train_classes = num_classes // 2
    labels = np.repeat(np.arange(num_classes, dtype=np.int64), images_per_class)
    strokes = class_strokes(seed, _DOMAIN_EVAL_SHAPES, num_classes, style)
    contexts = make_contexts(seed, style)
    k = len(contexts)
    class_context = _rng(seed, _KIND_EVAL, _STREAM_CONTEXT_CHOICE, 0).permutation(num_classes) % k
    ctx_rng = _rng(seed, _KIND_EVAL, _STREAM_CONTEXT_CHOICE, 1)
    is_train = labels < n_train_classes
    ctx = _assign_contexts(labels, class_context, context_bias, k, ctx_rng)
    uniform = _rng(seed, _KIND_EVAL, _STREAM_CONTEXT_CHOICE, 2).integers(0, k, len(labels))
    ctx = np.where(is_train, ctx, uniform)
    images = render_glyphs(strokes[labels], ctx, contexts, image_size=image_size,
                           geometry_rng=_rng(seed, _KIND_EVAL, _STREAM_GEOMETRY),
                           background_rng=_rng(seed, _KIND_EVAL, _STREAM_BACKGROUND),
                           noise_rng=_rng(seed, _KIND_EVAL, _STREAM_NOISE), style=style)
    return {
        "train_images": images[is_train], "train_labels": labels[is_train], "train_contexts": ctx[is_train],
        "test_images": images[~is_train], "test_labels": labels[~is_train], "test_contexts": ctx[~is_train],
        "class_context": class_context.astype(np.int64),
    }


def generate_pool_arrays(*, seed: int, num_classes: int, images_per_class: int, image_size: int,
                         style: GlyphStyle = DEFAULT_STYLE) -> dict[str, np.ndarray]:
    """The pretraining pool's arrays (uncached): other class shapes, uniformly random contexts."""
    labels = np.repeat(np.arange(num_classes, dtype=np.int64), images_per_class)
    strokes = class_strokes(seed, _DOMAIN_POOL_SHAPES, num_classes, style)
    contexts = make_contexts(seed, style)
    ctx = _rng(seed, _KIND_POOL, _STREAM_CONTEXT_CHOICE).integers(0, len(contexts), len(labels))
    images = render_glyphs(strokes[labels], ctx, contexts, image_size=image_size,
                           geometry_rng=_rng(seed, _KIND_POOL, _STREAM_GEOMETRY),
                           background_rng=_rng(seed, _KIND_POOL, _STREAM_BACKGROUND),
                           noise_rng=_rng(seed, _KIND_POOL, _STREAM_NOISE), style=style)
    return {"images": images, "labels": labels, "contexts": ctx}


def _cache_path(kind: str, params: dict) -> Path:
    key = dict(params, kind=kind, version=GENERATOR_VERSION, style=asdict(DEFAULT_STYLE))
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "builtin" / f"{kind}-v{GENERATOR_VERSION}-{digest}.npz"


def _cached(kind: str, params: dict, generate: Callable[[], dict[str, np.ndarray]], expected: tuple[str, ...],
            num_images: int, cache: bool) -> dict[str, np.ndarray]:
    """``generate()``, or its arrays read back from the cache (a corrupt cache file is regenerated).

    ``num_images``: how many images the ``*_images`` arrays hold together (a sanity check).
    """
    if not cache:
        return generate()
    path = _cache_path(kind, params)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {name: f[name] for name in expected}
            size = params["image_size"]
            images = [v for k, v in arrays.items() if k.endswith("images")]
            if (sum(len(v) for v in images) == num_images
                    and all(v.dtype == np.uint8 and v.shape[1:] == (size, size, 3) for v in images)):
                return arrays
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # corrupt or from an incompatible writer: regenerate below
    arrays = generate()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    write_cache_file(path, write)  # read-only or full cache: one warning, the data is still usable
    return arrays


def shifted_crops(padded: torch.Tensor, shifts: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Crop ``h x w`` of each image of ``padded`` (``B x C x H' x W'``) at its own ``shifts[b] = (row, col)``.

    One gather over each image's flattened pixels (several times faster than indexing rows and columns).
    """
    n, c, _, width = padded.shape
    window = (torch.arange(h, device=padded.device)[:, None] * width
              + torch.arange(w, device=padded.device)).view(1, h * w)          # the crop at (0, 0)
    start = (shifts[:, 0] * width + shifts[:, 1]).view(n, 1)
    index = (start + window)[:, None, :].expand(n, c, h * w)
    return padded.flatten(2).gather(2, index).view(n, c, h, w)


class BuiltinTrainTransform(BatchTransform):
    """Light augmentation for glyphs: random translation (replicate-pad ``pad`` + random crop) and
    brightness/contrast jitter, then normalisation. No horizontal flip (it changes a glyph's identity).

    Input: a ``3 x H x W`` float tensor in [0, 1], with torch's global RNG; or a batch ``B x 3 x H x W``
    through ``batch`` (every image's shift and jitter drawn at once from the given generator).
    """

    def __init__(self, pad: int = 2, brightness: float = 0.1, contrast: float = 0.1,
                 mean: tuple[float, ...] = NORM_MEAN, std: tuple[float, ...] = NORM_STD) -> None:
        self.pad = pad
        self.brightness = brightness
        self.contrast = contrast
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.pad:
            x = F.pad(x[None], (self.pad,) * 4, mode="replicate")[0]
            i, j = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
            x = x[:, i:i + h, j:j + w]
        b, c = (torch.rand(2) * 2 - 1).tolist()
        return self._jitter(x, x.mean(), b, c)

    def batch(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.pad:
            shifts = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=generator).to(x.device)
            x = shifted_crops(F.pad(x, (self.pad,) * 4, mode="replicate"), shifts, h, w)
        b, c = (torch.rand(2, n, 1, 1, 1, generator=generator) * 2 - 1).to(x.device)
        return self._jitter(x, x.mean(dim=(1, 2, 3), keepdim=True), b, c)

    def _jitter(self, x: torch.Tensor, mu, b, c) -> torch.Tensor:
        """Contrast ``c`` and brightness ``b`` (each in [-1, 1], times its strength) about the mean ``mu``,
        clamped to [0, 1], then normalised. Numbers for one image, ``B x 1 x 1 x 1`` tensors for a batch."""
        x = ((x - mu) * (1 + self.contrast * c) + mu + self.brightness * b).clamp(0, 1)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def __repr__(self) -> str:
        return f"BuiltinTrainTransform(pad={self.pad}, brightness={self.brightness}, contrast={self.contrast})"


class BuiltinEvalTransform(BatchTransform):
    """Normalisation only (the same mean/std as ``BuiltinTrainTransform``)."""

    def __init__(self, mean: tuple[float, ...] = NORM_MEAN, std: tuple[float, ...] = NORM_STD) -> None:
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def batch(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return self(x)

    def __repr__(self) -> str:
        return "BuiltinEvalTransform()"


def load_builtin(*, seed: int = 0, num_classes: int = DEFAULT_NUM_CLASSES,
                 images_per_class: int = DEFAULT_IMAGES_PER_CLASS, context_bias: float = 0.0,
                 image_size: int = 32, cache: bool = True) -> DataSource:
    """The built-in glyph dataset: ``num_classes`` evaluation classes, half training, half test.

    Labels are ``0 .. num_classes - 1`` (training classes ``0 .. num_classes // 2 - 1``).
    ``context_bias`` in [0, 1] correlates training classes with their own background context.
    Raises ``ConfigError`` for an invalid argument.
    """
    seed = _check_seed(seed)
    num_classes = check_int("num_classes", num_classes, MIN_CLASSES, MAX_CLASSES)
    images_per_class = check_int("images_per_class", images_per_class, 2, 10_000)
    context_bias = _check_bias(context_bias)
    image_size = check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    params = dict(seed=seed, num_classes=num_classes, images_per_class=images_per_class,
                  context_bias=context_bias, image_size=image_size)
    names = ("train_images", "train_labels", "train_contexts", "test_images", "test_labels",
             "test_contexts", "class_context")
    arrays = _cached("eval", params, lambda: generate_builtin_arrays(**params), names,
                     num_classes * images_per_class, cache)
    train_tf, eval_tf = BuiltinTrainTransform(), BuiltinEvalTransform()
    info = {
        "train_contexts": arrays["train_contexts"],
        "test_contexts": arrays["test_contexts"],
        "class_context": arrays["class_context"],
        "num_contexts": DEFAULT_STYLE.num_contexts,
        "context_bias": context_bias,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
    }
    return DataSource(
        name="builtin",
        train=ArrayImageSet(arrays["train_images"], arrays["train_labels"]),
        test=ArrayImageSet(arrays["test_images"], arrays["test_labels"]),
        train_transform=train_tf,
        eval_transform=eval_tf,
        info=info,
    )


def load_pretrain_pool(*, seed: int = 0, num_classes: int = POOL_NUM_CLASSES,
                       images_per_class: int = POOL_IMAGES_PER_CLASS, image_size: int = 32,
                       cache: bool = True, transform: Optional[Transform] = None) -> ArrayImageSet:
    """The pretraining pool: ``num_classes`` glyph classes disjoint from the evaluation classes.

    Labels ``0 .. num_classes - 1`` (the pool's own); backgrounds uniformly random contexts (the
    per-image ids are in the returned set's ``contexts`` attribute).
    """
    seed = _check_seed(seed)
    num_classes = check_int("num_classes", num_classes, 2, MAX_CLASSES)
    images_per_class = check_int("images_per_class", images_per_class, 1, 10_000)
    image_size = check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    params = dict(seed=seed, num_classes=num_classes, images_per_class=images_per_class, image_size=image_size)
    arrays = _cached("pool", params, lambda: generate_pool_arrays(**params), ("images", "labels", "contexts"),
                     num_classes * images_per_class, cache)
    pool = ArrayImageSet(arrays["images"], arrays["labels"], transform)
    pool.contexts = arrays["contexts"]
    return pool
