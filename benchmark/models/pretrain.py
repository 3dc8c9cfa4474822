"""Cached pretraining of the small CNN trunk on the built-in dataset's disjoint class pool.

The built-in dataset's "Pretrained" trunk plays the role ImageNet weights play for the real
datasets: ``SmallCNN`` trained as a classifier (linear head, cross-entropy, Adam, cosine learning
rate) on ``load_pretrain_pool`` -- glyph classes that never occur among the evaluation classes --
with the built-in training augmentation. The trained ``state_dict`` is cached under
``cache_dir() / "trunks"`` (keyed by every parameter and the generator/pretraining versions) so
that only the first call trains; training is deterministic for a seed and leaves the caller's
torch RNG state untouched. An unfinished pretraining is checkpointed beside the cache entry every
``CHECKPOINT_EVERY`` steps (model, optimiser, schedule, data order and random states, written
atomically); a killed one resumes from its last checkpoint to the same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from benchmark.checks import check_int
from benchmark.constants import cache_dir
from benchmark.data.builtin import (
    DEFAULT_STYLE,
    GENERATOR_VERSION,
    POOL_IMAGES_PER_CLASS,
    POOL_NUM_CLASSES,
    BuiltinTrainTransform,
    load_pretrain_pool,
)
from benchmark.errors import ConfigError
from benchmark.io import atomic_write, write_cache_file
from benchmark.models.trunks import SmallCNN

#: Bumped whenever the pretraining recipe changes (invalidates cached trunks).
PRETRAIN_VERSION = 1
DEFAULT_EPOCHS = 8
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 3e-3
WEIGHT_DECAY = 1e-4
#: Optimiser steps between two checkpoints of an unfinished pretraining (a killed one resumes from the last).
CHECKPOINT_EVERY = 25


def _new_trunk() -> SmallCNN:
    """A default ``SmallCNN`` (its random initialisation does not touch the caller's RNG)."""
    with torch.random.fork_rng(devices=[]):
        return SmallCNN()


def _architecture() -> str:
    """A fingerprint of ``SmallCNN``'s layers and parameter shapes (part of the cache key)."""
    trunk = _new_trunk()
    shapes = [(k, tuple(v.shape)) for k, v in trunk.state_dict().items()]
    return hashlib.sha256(f"{trunk!r}{shapes}".encode()).hexdigest()[:16]


def trunk_cache_path(*, seed: int, epochs: int, pool_classes: int = POOL_NUM_CLASSES,
                     pool_images_per_class: int = POOL_IMAGES_PER_CLASS, batch_size: int = DEFAULT_BATCH_SIZE,
                     lr: float = DEFAULT_LR) -> Path:
    """Where the pretrained weights for these parameters are (or will be) cached.

    The key also covers the trunk's architecture and the generator/pretraining versions.
    """
    key = dict(seed=seed, epochs=epochs, pool_classes=pool_classes, pool_images_per_class=pool_images_per_class,
               batch_size=batch_size, lr=float(lr), architecture=_architecture(), weight_decay=WEIGHT_DECAY,
               pretrain_version=PRETRAIN_VERSION, generator_version=GENERATOR_VERSION,
               style=asdict(DEFAULT_STYLE))
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "trunks" / f"small_cnn-v{PRETRAIN_VERSION}-{digest}.pt"


class _ResumableSampler(torch.utils.data.Sampler):
    """``RandomSampler`` order, the first ``skip`` indices of the next epoch left out (a resumed epoch).

    The permutation is drawn from the same generator as ``DataLoader(shuffle=True)`` draws it, so the order,
    and every random number after it, is the same as without the wrapper."""

    def __init__(self, inner: torch.utils.data.RandomSampler) -> None:
        self.inner, self.skip = inner, 0

    def __iter__(self):
        it = iter(self.inner)
        for _ in range(self.skip):
            next(it)
        self.skip = 0
        yield from it

    def __len__(self) -> int:
        return len(self.inner)


def _after_step(step: int) -> None:
    """Called after every optimiser step (the resume tests stop a pretraining here)."""


def checkpoint_path(path: Path) -> Path:
    """The checkpoint of an unfinished pretraining whose weights will be cached at ``path``."""
    return path.with_name(path.stem + ".partial.pt")


def _load_checkpoint(path: Optional[Path]) -> Optional[dict]:
    if path is None or not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torn or incompatible (the unpickler raises many kinds): start again
        return None


def _train(trunk: SmallCNN, *, seed: int, epochs: int, pool_classes: int, pool_images_per_class: int,
           batch_size: int, lr: float, progress: bool, checkpoint: Optional[Path] = None,
           checkpoint_every: Optional[int] = None) -> None:
    """Train ``trunk`` (with a linear head); every ``checkpoint_every`` steps the model, optimiser, schedule,
    position and random states are written atomically to ``checkpoint``, and a checkpoint found there is
    resumed from: the result is the same as an uninterrupted run's."""
    from tqdm.auto import tqdm

    checkpoint_every = checkpoint_every or CHECKPOINT_EVERY
    pool = load_pretrain_pool(seed=seed, num_classes=pool_classes, images_per_class=pool_images_per_class,
                              transform=BuiltinTrainTransform())
    generator = torch.Generator().manual_seed(seed)
    sampler = _ResumableSampler(torch.utils.data.RandomSampler(pool, generator=generator))
    loader = torch.utils.data.DataLoader(pool, batch_size=batch_size, sampler=sampler,
                                         drop_last=len(pool) > batch_size, num_workers=0, generator=generator)
    head = nn.Linear(trunk.out_dim, pool_classes)
    # channels_last is about 1.5x faster for this network on CPU; the weights are converted back.
    model = nn.Sequential(trunk, head).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    per_epoch = len(loader)
    total = epochs * per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=0.15)
    step, start_epoch, resumed_epoch = 0, 0, None
    saved = _load_checkpoint(checkpoint)
    if isinstance(saved, dict) and saved.get("total") == total and "epoch" in saved:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        step, start_epoch = saved["step"], saved["epoch"]
        # the checkpoint's epoch again from its first generator state, its batches done skipped (a finished
        # epoch is skipped whole: the sampler's last draw from the generator happens after its last batch)
        resumed_epoch = saved["epoch_generator"]
        sampler.skip = (step - start_epoch * per_epoch) * batch_size
        torch.set_rng_state(saved["torch_rng"])
    model.train()
    bar = tqdm(total=total, initial=step, desc="pretraining small CNN" + (f" (resumed at {step})" if step else ""),
               unit="it", disable=not progress, leave=False)
    try:
        for epoch in range(start_epoch, epochs):
            if resumed_epoch is not None:  # a resumed epoch: its permutation drawn again from its first state
                generator.set_state(resumed_epoch)
                resumed_epoch = None
            epoch_state = generator.get_state()
            for x, y, _ in loader:
                x = x.contiguous(memory_format=torch.channels_last)
                loss = nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
                if checkpoint is not None and step % checkpoint_every == 0 and step < total:
                    state = {"total": total, "step": step, "epoch": epoch, "model": model.state_dict(),
                             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                             "epoch_generator": epoch_state, "torch_rng": torch.get_rng_state()}
                    try:
                        atomic_write(checkpoint, lambda tmp, state=state: torch.save(state, tmp))
                    except OSError:  # an unwritable cache: the pretraining goes on without checkpoints
                        checkpoint = None
                _after_step(step)
    finally:
        bar.close()
    trunk.to(memory_format=torch.contiguous_format)


def pretrained_small_cnn(*, seed: int = 0, epochs: int = DEFAULT_EPOCHS, cache: bool = True,
                         progress: bool = True, pool_classes: int = POOL_NUM_CLASSES,
                         pool_images_per_class: int = POOL_IMAGES_PER_CLASS,
                         batch_size: int = DEFAULT_BATCH_SIZE, lr: float = DEFAULT_LR) -> SmallCNN:
    """A ``SmallCNN`` pretrained as a classifier on the built-in dataset's disjoint class pool.

    The first call trains it (about 15-30 s on two CPU cores with the defaults) and caches the
    weights; later calls with the same parameters load them. The trunk is returned in eval mode.
    ``pool_classes``/``pool_images_per_class``/``batch_size``/``lr`` exist for tests and
    experiments; the defaults are the calibrated recipe.
    """
    seed = check_int("seed", seed, 0, 2**63 - 1)
    epochs = check_int("epochs", epochs, 1, 10_000)
    pool_classes = check_int("pool_classes", pool_classes, 2, 100_000)
    pool_images_per_class = check_int("pool_images_per_class", pool_images_per_class, 1, 10_000)
    batch_size = check_int("batch_size", batch_size, 2, 100_000)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0.0 < lr <= 10.0:
        raise ConfigError(f"lr must be a number in (0, 10], got {lr!r}")
    lr = float(lr)

    path = trunk_cache_path(seed=seed, epochs=epochs, pool_classes=pool_classes,
                            pool_images_per_class=pool_images_per_class, batch_size=batch_size, lr=lr)
    if cache and path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            trunk = _new_trunk()
            trunk.load_state_dict(state)
            return trunk.eval()
        except (OSError, RuntimeError, EOFError, KeyError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile):
            pass  # corrupt or incompatible cache file: train again and overwrite it

    partial = checkpoint_path(path) if cache else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trunk = SmallCNN()
        _train(trunk, seed=seed, epochs=epochs, pool_classes=pool_classes,
               pool_images_per_class=pool_images_per_class, batch_size=batch_size, lr=lr, progress=progress,
               checkpoint=partial)
    trunk.eval()
    if cache:
        state = {k: v.contiguous() for k, v in trunk.state_dict().items()}
        if write_cache_file(path, lambda tmp: torch.save(state, tmp)):  # unwritable cache: one warning
            partial.unlink(missing_ok=True)
    return trunk
