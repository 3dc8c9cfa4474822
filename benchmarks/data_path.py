"""Images per second of the training data path alone: file images for 0, 1, 2 ... workers, and in-memory batches.

1. Writes ``--images`` random 500 x 375 JPEGs (the size of a typical CUB-200-2011 image) to a temporary
   folder, then draws class-balanced batches of 32 through ``benchmark.training.batch_loader`` with the
   protocol's ImageNet training transform (resize 256, random resized crop 227, flip, normalisation), and
   prints, for each number of workers, the images per second after one warm-up batch and the ratio to
   0 workers (the same code decoding in the main process). The settings are timed in turn, ``--rounds``
   times over (other jobs on the machine then slow every setting alike); the last lines give each
   setting's median over the rounds and the median of its per-round ratios.
2. The built-in dataset's in-memory path: batches of 32 glyph-sized images (32 x 32) through its training
   transform one image at a time (the per-image path) and as one tensor (the path the trainer takes), and the gain.

    python benchmarks/data_path.py --workers 0,1,2 --batches 20 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmark.data.base import ArrayImageSet, FileImageSet
from benchmark.data.builtin import BuiltinTrainTransform
from benchmark.data.transforms import imagenet_train_transform
from benchmark.training.batch_loader import array_batches, image_batches
from benchmark.training.samplers import ClassBalancedBatches

BATCH = 32


def write_images(folder: Path, n: int, classes: int) -> FileImageSet:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(375, 500, 3), dtype=np.uint8)
    paths, labels = [], []
    for i in range(n):
        path = folder / f"{i}.jpg"
        # a smooth image with noise compresses and decodes like a photograph
        image = np.clip(base.astype(np.int16) // 4 + rng.integers(0, 64, size=base.shape), 0, 255)
        Image.fromarray(image.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
        labels.append(i % classes)
    return FileImageSet(paths, labels, imagenet_train_transform())


def images_per_second(stream, n_batches: int) -> float:
    next(stream)  # warm-up: workers started, first batch through
    start = time.perf_counter()
    for _ in range(n_batches):
        next(stream)
    return n_batches * BATCH / (time.perf_counter() - start)


def file_rate(images: FileImageSet, workers: int, n_batches: int) -> float:
    batches = ClassBalancedBatches(images.labels, batch_size=BATCH, m_per_class=4, seed=0)
    stream = image_batches(images, batches, seed=0, num_workers=workers)
    rate = images_per_second(stream, n_batches)
    del stream  # ends the workers
    return rate


def in_memory_rates(n_batches: int) -> tuple[float, float]:
    """Images/s of the built-in dataset's training transform, one image at a time and on whole batches."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(100), 6)
    images = ArrayImageSet(rng.integers(0, 256, size=(len(labels), 32, 32, 3), dtype=np.uint8), labels,
                           BuiltinTrainTransform())

    def batches():
        return ClassBalancedBatches(labels, batch_size=BATCH, m_per_class=4, seed=0)

    per_image = images_per_second(image_batches(images, batches(), seed=0, num_workers=0), n_batches)
    whole = images_per_second(array_batches(images, batches(), seed=0), n_batches)
    return per_image, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="0,1,2", help="comma-separated numbers of workers (0 first)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches of 32 per setting")
    parser.add_argument("--rounds", type=int, default=3, help="times every setting is timed, in turn")
    parser.add_argument("--images", type=int, default=256, help="JPEG files written")
    args = parser.parse_args()
    settings = [int(w) for w in args.workers.split(",")]
    if settings[0] != 0:
        parser.error("--workers must start with 0 (the serial path every ratio is taken against)")
    torch.set_num_threads(1)  # one core per process: the workers, not intra-op threads, parallelise
    rates: dict[int, list[float]] = {w: [] for w in settings}
    ratios: dict[int, list[float]] = {w: [] for w in settings}
    with tempfile.TemporaryDirectory() as tmp:
        images = write_images(Path(tmp), args.images, classes=32)
        print(f"{args.images} JPEGs 500x375, batches of {BATCH}, ImageNet train transform, {os.cpu_count()} CPUs")
        for r in range(1, args.rounds + 1):
            for workers in settings:
                rate = file_rate(images, workers, args.batches)
                rates[workers].append(rate)
                ratios[workers].append(rate / rates[0][-1])
                print(f"round {r} workers={workers}: {rate:7.1f} images/s  ({ratios[workers][-1]:.2f}x the serial "
                      "path)", flush=True)
    for workers in settings:
        print(f"median workers={workers}: {statistics.median(rates[workers]):7.1f} images/s, "
              f"{statistics.median(ratios[workers]):.2f}x the serial path (rounds: "
              f"{', '.join(f'{v:.2f}' for v in ratios[workers])})")
    per_image, whole = in_memory_rates(args.batches * 10)
    print(f"in-memory 32x32 built-in batches: {per_image:8.0f} images/s one image at a time, {whole:8.0f} as one "
          f"tensor ({whole / per_image:.1f}x)")


if __name__ == "__main__":
    main()
