"""``training.num_workers: auto``: a share of the cores on a GPU run, none on a CPU-only one; numbers kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.data import loader_workers
from benchmark.data.loader_workers import resolve_num_workers


@pytest.mark.parametrize("value", [0, 1, 2, 16])
def test_numbers_are_kept_on_any_device(value):
    assert resolve_num_workers(value, "cpu") == value
    assert resolve_num_workers(value, torch.device("cuda")) == value


def test_auto_is_zero_on_a_cpu_only_run():
    assert resolve_num_workers("auto", "cpu") == 0
    assert resolve_num_workers("auto", torch.device("cpu")) == 0


@pytest.mark.parametrize("cores, gpus, expected", [
    (2, 1, 1),    # this kind of machine: one worker, one core left to the training process
    (16, 1, 8),   # capped at MAX_AUTO_WORKERS
    (6, 1, 5),
    (16, 8, 1),   # one GPU's share of the cores
    (64, 4, 8),
    (1, 1, 1),    # at least one
])
def test_auto_on_a_gpu_takes_one_gpus_share_of_the_cores(monkeypatch, cores, gpus, expected):
    monkeypatch.setattr(loader_workers, "usable_cores", lambda: cores)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert resolve_num_workers("auto", "cuda:0") == expected


def test_usable_cores_is_this_process_share():
    assert 1 <= loader_workers.usable_cores() <= (torch.multiprocessing.cpu_count() or 1)


def test_embed_takes_auto():
    from benchmark.data.base import ArrayImageSet
    from benchmark.evaluation.embed import embed

    images = ArrayImageSet(np.zeros((3, 8, 8, 3), dtype=np.uint8), [0, 1, 2])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    assert embed(model, images, device=torch.device("cpu"), num_workers="auto").shape == (3, 2)
