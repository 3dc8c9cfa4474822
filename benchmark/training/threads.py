"""A scoped number of CPU threads for torch and faiss (``training.threads``), restored when the block ends."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads and ``n`` faiss (OpenMP) threads.

    ``n = 0`` leaves both settings alone. On a shared CPU, small models run faster on one thread
    than on a pool whose idle threads spin while another process holds the cores.
    """
    if n <= 0:
        yield
        return
    import faiss

    before, before_faiss = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        faiss.omp_set_num_threads(before_faiss)
