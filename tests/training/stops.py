"""Shared by the tests of stopping and resuming a fold: ``Stop`` and the ``stop_at_call`` fixture (a plugin of
tests/conftest.py, so every test can ask for it)."""

from __future__ import annotations

import pytest

from benchmark.training import interrupt
from benchmark.training.step import TrainingStep


class Stop(KeyboardInterrupt):
    """The exception a stop request raises (as the CLI's Terminated)."""


@pytest.fixture
def stop_at_call(monkeypatch):
    """``stop_at_call(n)``: a stop is requested during the n-th training step (taken before the next one)."""
    calls = {"n": 0, "at": None}
    real = TrainingStep.__call__

    def counting(self, model, batch):
        calls["n"] += 1
        if calls["n"] == calls["at"]:
            with interrupt.polling():  # the trainer polls already; as a signal handler calls it
                assert interrupt.request(Stop)
        return real(self, model, batch)

    monkeypatch.setattr(TrainingStep, "__call__", counting)

    def arm(n):
        calls["n"], calls["at"] = 0, n

    yield arm
    interrupt.clear()
