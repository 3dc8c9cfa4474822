"""Fixed shared-memory buffers that DataLoader workers write whole batches into, reused batch after batch.

A batch handed from a worker to the main process the usual way (``default_collate``) gets a new
shared-memory segment every time: the worker creates, sizes and maps it, passes its descriptor over a
pipe, the main process maps it again, and both unmap it later: on a 2-core machine, enough to keep two
workers well short of twice the serial path's images/s (``benchmarks/data_path.py``). ``BatchSlots``
allocates ``count`` buffers of one batch's shape once, before the workers start, and workers hand
over only a batch number.

Batch ``b`` goes to slot ``b % count``. Each slot carries a ticket, the number of the batch that may be
written into it next: a worker writing batch ``b`` waits until the slot's ticket is ``b`` (the main
process has read batch ``b - count``), stacks the batch's images into the slot, and returns; the main
process reads the slot, then hands its ticket on to ``b + count`` (``release``). With more slots than
batches the loader has in flight, no worker ever waits; with fewer, workers wait their turn, in order.
``close`` (the main process is done) ends every wait at once.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

WAIT_LIMIT_S = 600.0  # a worker waiting this long for its slot has lost the main process: it raises


class SlotsClosed(RuntimeError):
    """The main process closed the slots (training ended) while a worker waited for one."""


class BatchSlots:
    """``count`` shared buffers ``count x shape`` of ``dtype``; see the module docstring for the protocol."""

    def __init__(self, count: int, shape: Sequence[int], dtype: torch.dtype = torch.uint8, start: int = 0) -> None:
        """``start``: the number of the first batch (a resumed fold's batches go on from where they stopped)."""
        if count < 1:
            raise ValueError(f"BatchSlots needs at least one slot, got count={count}")
        self.count, self.shape, self.dtype = count, tuple(int(s) for s in shape), dtype
        self.buffers = torch.empty((count, *self.shape), dtype=dtype).share_memory_()
        # each slot's first batch: the first number from ``start`` on that goes to it
        self.tickets = (start + (torch.arange(count, dtype=torch.int64) - start) % count).share_memory_()
        self.closed = torch.zeros(1, dtype=torch.int64).share_memory_()

    def fits(self, items: Sequence[torch.Tensor]) -> bool:
        """Whether ``items``, stacked, fill one slot exactly (same number, shape and dtype)."""
        return (len(items) == self.shape[0]
                and all(tuple(t.shape) == self.shape[1:] and t.dtype == self.dtype for t in items))

    def acquire(self, number: int) -> torch.Tensor:
        """Slot of batch ``number`` (a view), once the batch before it in that slot has been released."""
        slot = number % self.count
        deadline, pause = time.monotonic() + WAIT_LIMIT_S, 1e-4
        while int(self.tickets[slot]) != number:
            if int(self.closed[0]):
                raise SlotsClosed(f"batch slots closed while batch {number} waited for slot {slot}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {number} waited over {WAIT_LIMIT_S:g} s for slot {slot}, which still "
                                   f"belongs to batch {int(self.tickets[slot])} (not yet read)")
            time.sleep(pause)
            pause = min(2 * pause, 0.01)
        return self.buffers[slot]

    def write(self, number: int, items: Sequence[torch.Tensor]) -> None:
        """Stack ``items`` (``fits``) into batch ``number``'s slot (in a worker)."""
        torch.stack(list(items), out=self.acquire(number))

    def read(self, number: int) -> torch.Tensor:
        """The slot holding batch ``number`` (a view: copy it before ``release``)."""
        return self.buffers[number % self.count]

    def release(self, number: int) -> None:
        """Batch ``number`` is read: its slot may take batch ``number + count``."""
        self.tickets[number % self.count] = number + self.count

    def close(self) -> None:
        """No more batches will be read: workers waiting for a slot stop (``SlotsClosed``)."""
        self.closed[0] = 1
