"""Images per second of the training data path alone, for 0, 1, 2 ... DataLoader workers, on CUB-sized JPEGs.

Writes ``--images`` random 500 x 375 JPEGs (the size of a typical CUB-200-2011 image) to a temporary
folder, then draws class-balanced batches of 32 through ``benchmark.training.batch_loader`` with the
protocol's ImageNet training transform (resize 256, random resized crop 227, flip), and prints, for
each number of workers, the images per second after one warm-up batch and the ratio to 0 workers
(decoding in the main process).

    python benchmarks/data_path.py --workers 0,1,2 --batches 20
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmark.data.base import FileImageSet
from benchmark.data.transforms import imagenet_train_transform
from benchmark.training.batch_loader import image_batches
from benchmark.training.samplers import ClassBalancedBatches


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


def images_per_second(images: FileImageSet, workers: int, n_batches: int) -> float:
    batches = ClassBalancedBatches(images.labels, batch_size=32, m_per_class=4, seed=0)
    stream = image_batches(images, batches, seed=0, num_workers=workers)
    next(stream)  # warm-up: workers started, first batch through
    start = time.perf_counter()
    for _ in range(n_batches):
        next(stream)
    elapsed = time.perf_counter() - start
    del stream
    return n_batches * 32 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="0,1,2", help="comma-separated numbers of workers")
    parser.add_argument("--batches", type=int, default=20, help="timed batches of 32 per setting")
    parser.add_argument("--images", type=int, default=256, help="JPEG files written")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per process: the workers, not intra-op threads, parallelise
    with tempfile.TemporaryDirectory() as tmp:
        images = write_images(Path(tmp), args.images, classes=32)
        print(f"{args.images} JPEGs 500x375, batches of 32, ImageNet train transform, {os.cpu_count()} CPUs")
        serial = None
        for workers in (int(w) for w in args.workers.split(",")):
            rate = images_per_second(images, workers, args.batches)
            serial = serial or rate
            print(f"workers={workers}: {rate:7.1f} images/s  ({rate / serial:.2f}x the serial path)")


if __name__ == "__main__":
    main()
