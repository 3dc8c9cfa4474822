"""BatchSlots: batches written by another process land in their slot, in turn, and a closed slot set ends every wait."""

from __future__ import annotations

import time

import pytest
import torch
import torch.multiprocessing as mp

from benchmark.data import batch_slots
from benchmark.data.batch_slots import BatchSlots, SlotsClosed


def batch(number, n=3, shape=(2, 4, 5)):
    return [torch.full(shape, number * 10 + i, dtype=torch.uint8) for i in range(n)]


def write_in_child(slots, number):
    slots.write(number, batch(number))


def test_fits_checks_count_shape_and_dtype():
    slots = BatchSlots(2, (3, 2, 4, 5))
    assert slots.fits(batch(0))
    assert not slots.fits(batch(0, n=2))                                   # a short batch
    assert not slots.fits(batch(0, shape=(2, 4, 6)))                       # another image size
    assert not slots.fits([t.float() for t in batch(0)])                   # another dtype


def test_a_batch_written_by_another_process_is_read_in_its_slot():
    # spawn: the slots reach the child pickled (shared-memory handles), as with a forkserver or spawn DataLoader
    slots = BatchSlots(2, (3, 2, 4, 5))
    for number in (0, 1):
        child = mp.get_context("spawn").Process(target=write_in_child, args=(slots, number))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert torch.equal(slots.read(number), torch.stack(batch(number)))


def test_a_writer_waits_until_the_batch_before_it_in_the_slot_is_released():
    slots = BatchSlots(2, (3, 2, 4, 5))
    slots.write(0, batch(0))
    slots.write(1, batch(1))
    child = mp.get_context("fork").Process(target=write_in_child, args=(slots, 2))  # batch 2 goes to slot 0
    child.start()
    time.sleep(1.0)
    assert child.is_alive() and torch.equal(slots.read(0), torch.stack(batch(0)))    # batch 0 not yet read
    slots.release(0)
    child.join(60)
    assert child.exitcode == 0 and torch.equal(slots.read(2), torch.stack(batch(2)))
    assert torch.equal(slots.read(1), torch.stack(batch(1)))                         # the other slot untouched


def test_close_ends_a_wait_and_a_lost_reader_times_out(monkeypatch):
    slots = BatchSlots(1, (3, 2, 4, 5))
    slots.write(0, batch(0))
    slots.close()
    with pytest.raises(SlotsClosed, match="batch 1"):
        slots.acquire(1)
    monkeypatch.setattr(batch_slots, "WAIT_LIMIT_S", 0.2)
    with pytest.raises(TimeoutError, match="belongs to batch 0"):
        BatchSlots(1, (1,)).acquire(1)


def test_needs_a_slot():
    with pytest.raises(ValueError, match="at least one slot"):
        BatchSlots(0, (3,))
