"""The on-disk cache of frozen trunk outputs: computed once per (weights, data, transform, views, cut).

``trunk_outputs(encoder, images, transform, views=V, key=...)`` runs ``encoder`` (the frozen part of a
trunk, see ``benchmark.models.cached_trunk``) on every image of ``images`` through ``transform``:
once with the evaluation transform (``views=None``: ``N x C x H x W``), or ``V`` times with the random
training transform (``N x V x C x H x W``, views drawn from a torch generator seeded with the key's
``seed``). The result is saved under ``cache_dir() / "frozen"`` in a file named by the SHA-256 of the
key, which the caller builds from everything the values depend on (``state_digest`` of the encoder's
weights, the images' fingerprint, the dataset's name and options, the transform's repr, V, the cut
and grid, the seed). The file holds its key, and is trusted only when it loads, its key matches and
its values have the expected shape and are finite; otherwise it is recomputed and overwritten
(atomically).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.constants import cache_dir
from benchmark.data.base import ImageSet, Transform
from benchmark.data.batch import gather
from benchmark.io import write_cache_file

#: Bumped whenever the way outputs are computed changes (invalidates cached files).
CACHE_VERSION = 1


def state_digest(module: nn.Module) -> str:
    """SHA-256 of a module's class, parameter/buffer names, shapes, dtypes and bytes."""
    h = hashlib.sha256(type(module).__name__.encode())
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def cache_path(key: dict) -> Path:
    """The file that holds (or will hold) the outputs for ``key``."""
    return cache_dir() / "frozen" / f"outputs-v{CACHE_VERSION}-{key_digest(key)[:24]}.pt"


def _read(path: Path, key: dict, rows: int, views: Optional[int]) -> Optional[torch.Tensor]:
    """The cached values, or None when the file is missing, unreadable, for another key or malformed."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        values = data["values"]
        if data["key"] != key_digest(key) or not isinstance(values, torch.Tensor):
            return None
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile):
        return None
    expected_dims = 4 if views is None else 5
    if (values.dtype != torch.float32 or values.dim() != expected_dims or values.shape[0] != rows
            or (views is not None and values.shape[1] != views) or not bool(torch.isfinite(values).all())):
        return None
    return values


@torch.no_grad()
def _compute(encoder: nn.Module, images: ImageSet, transform: Optional[Transform], views: Optional[int],
             seed: int, device: torch.device, batch_size: int, desc: str, progress: bool) -> torch.Tensor:
    encoder = encoder.to(device).eval()
    source = images.with_transform(transform)
    n, passes = len(source), views or 1
    out: list[torch.Tensor] = []
    bar = tqdm(total=n * passes, desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for _ in range(passes):
                chunks = []
                for start in range(0, n, batch_size):
                    x = gather(source, range(start, min(n, start + batch_size))).images
                    chunks.append(encoder(x.to(device)).float().cpu())
                    bar.update(len(x))
                out.append(torch.cat(chunks))
    finally:
        bar.close()
    values = out[0] if views is None else torch.stack(out, dim=1)
    return values.contiguous()


def trunk_outputs(encoder: nn.Module, images: ImageSet, transform: Optional[Transform], *, views: Optional[int],
                  key: dict, seed: int = 0, device: Optional[torch.device] = None, batch_size: int = 256,
                  cache: bool = True, desc: str = "caching trunk outputs", progress: bool = True) -> torch.Tensor:
    """``encoder`` applied to every image (see the module docstring); cached under ``key`` (plus V, seed)."""
    key = dict(key, views=views, seed=seed, rows=len(images), version=CACHE_VERSION)
    path = cache_path(key)
    if cache:
        values = _read(path, key, len(images), views)
        if values is not None:
            return values
    values = _compute(encoder, images, transform, views, seed, device or torch.device("cpu"), batch_size, desc,
                      progress)
    if cache:
        # a read-only or full cache is one warning: the values are still usable
        write_cache_file(path, lambda tmp: torch.save({"key": key_digest(key), "values": values}, tmp))
    return values
