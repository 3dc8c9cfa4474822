"""How many DataLoader worker processes load images: ``training.num_workers`` as a number, or ``auto``.

``auto`` gives a GPU run one GPU's share of the host's CPU cores, less one for the process that
trains (``cores // GPUs - 1``, at least 1, at most ``MAX_AUTO_WORKERS``), so that the device is fed
while the main process only launches its work. A CPU-only run gets 0: there the main process
trains on the same cores, and workers would take them from the model's own threads (in-memory
datasets and the frozen regime need no workers anyway). With several worker processes of one
leaderboard on one host, give an explicit number instead.
"""

from __future__ import annotations

import os

import torch

AUTO = "auto"
#: More workers than this rarely feed one GPU faster, and each holds a copy of the dataset's index.
MAX_AUTO_WORKERS = 8


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resolve_num_workers(num_workers: int | str, device: torch.device | str) -> int:
    """``num_workers`` itself, or for ``auto`` the share described in the module docstring."""
    if num_workers != AUTO:
        return int(num_workers)
    if torch.device(device).type != "cuda":
        return 0
    gpus = max(1, torch.cuda.device_count())
    return max(1, min(MAX_AUTO_WORKERS, usable_cores() // gpus - 1))
