"""A fold's whole training state, to stop a fold and go on with it later with the very same result.

``FoldState`` is what ``train_fold`` hands its ``save_state`` callback at each validation and when a
stop is requested (``benchmark.training.interrupt``), and what it takes back as ``resume``:

* where it stands: the epoch, the iterations done in it (``step``; None once the epoch is finished and
  validated), the iteration count, the validation curve, the best checkpoint (its weights, value, epoch);
* the model's weights and buffers; the method itself, pickled whole with its own batch sampler if it has
  one (loss parameters, memories, clusters, inferred environments: whatever Python state it keeps);
  the optimizer's and fp16 grad scaler's state;
* the batches' state (``FoldBatches.state_dict``) and every random generator the loop draws from:
  torch's CPU generator and each CUDA device's, numpy's global one and Python's ``random``.

Loaded into a freshly built model and optimizer of the same fold, the loop continues bit for bit as if
it had never stopped (tests/training/test_resume.py trains folds straight through and with a stop and
compares every weight). A state is saved with ``torch.save`` and loaded with ``weights_only=False``:
only states this harness wrote (the run folder's own files) are ever loaded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch


@dataclass
class FoldState:
    epoch: int
    #: Iterations done in ``epoch`` (its ``on_epoch_start`` already ran); None: ``epoch`` is finished.
    step: Optional[int]
    iteration: int
    #: The iteration count when ``epoch`` began (what ``Method.on_epoch_start`` saw).
    epoch_iteration: int
    curve: list
    best: dict
    model: dict
    #: ``{"method": Method, "sampler": its own batch sampler or None}``, pickled together.
    method: dict
    optimizer: dict
    scaler: Optional[dict]
    batches: dict
    rng: dict = field(default_factory=dict)
    #: The fold's index in its unit (set by whoever saves the state; -1: not said).
    fold: int = -1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> "FoldState":
        return cls(**data)


def rng_state(device: torch.device) -> dict:
    """Every random generator the training loop draws from."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
             "cuda": None}
    if device.type == "cuda" and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_fold_state(path, device: torch.device) -> FoldState:
    """A state written by ``torch.save(state.to_dict(), path)``, its tensors on ``device``'s kind (CPU ones stay)."""
    data = torch.load(path, map_location=device, weights_only=False)
    for key in ("torch",):  # generator states must stay CPU byte tensors
        data["rng"][key] = data["rng"][key].cpu()
    if data["rng"].get("cuda") is not None:
        data["rng"]["cuda"] = [s.cpu() for s in data["rng"]["cuda"]]
    return FoldState.from_dict(data)
