"""A unit's checkpoint in the run folder, so that a unit taken over by another worker resumes instead of restarting.

While a unit (a search trial's folds, a repeat's folds before its test evaluation) trains, its state lives in
``<run>/checkpoints/<study>/<unit>/`` (``<study>`` is the study name with ``::`` written ``--``, ``<unit>``
is ``search-<slot>`` or ``repeat-<index>``):

* ``unit.json``: what the unit is (method, parameters, seed key, the training, model and dataset settings)
  and its digest; a checkpoint of another configuration (``--allow-config-change``) is discarded;
* ``fold-<i>.pt``: each finished fold's best weights and its ``FoldResult``;
* ``training.pt``: the running fold's whole training state (``benchmark.training.resume.FoldState``),
  rewritten at every validation and when the worker is asked to stop (SIGTERM, SIGUSR1, Ctrl-C).

Every file is written atomically (``benchmark.io.atomic_write``): a worker killed mid-write leaves the
previous version. A worker that takes a unit over (its owner died, its heartbeat went stale, it released
the unit, or a re-run redoes it) finds the checkpoint by the unit's identity, replays the recorded
validations to the new trial, and goes on from the last state saved: at most one validation interval is
trained again, and the result is the one of an uninterrupted unit. The folder is removed once the unit is
recorded (complete or pruned), so the disk holds at most one unit per running worker: its finished
folds' best weights, one training state (model, best weights, optimizer state, method) and a few kB.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Optional

import torch

from benchmark.io import atomic_write, atomic_write_json
from benchmark.training.resume import FoldState, load_fold_state
from benchmark.training.trainer import FoldResult

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
UNIT_FILE, TRAINING_FILE = "unit.json", "training.pt"


def unit_folder(root: Path, seed_key: tuple) -> Path:
    """``root/<study>/<kind>-<n>`` for a unit's seed key ``(kind, study name, n)``."""
    kind, study, number = seed_key
    return Path(root) / str(study).replace("::", "--").replace("/", "_") / f"{kind}-{number}"


def digest(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:16]


class UnitCheckpoint:
    """The checkpoint folder of one unit (see the module docstring)."""

    def __init__(self, folder: Path, description: dict) -> None:
        self.folder = Path(folder)
        self.description = {**description, "digest": digest(description)}

    def open(self) -> bool:
        """Make the folder ready for this unit; True when it holds an earlier attempt's state to resume."""
        meta = self.folder / UNIT_FILE
        if meta.is_file():
            try:
                same = json.loads(meta.read_text(encoding="utf-8")).get("digest") == self.description["digest"]
            except (OSError, ValueError):
                same = False
            if same:
                return any(self.folder.glob("*.pt"))
            log.warning("%s holds a checkpoint of another configuration; discarded", self.folder)
            self.delete()
        for attempt in range(3):  # another worker may remove the (empty) parent folders in between
            try:
                atomic_write_json(meta, self.description)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        return False

    def _fold(self, i: int) -> Path:
        return self.folder / f"fold-{i}.pt"

    def finished(self, i: int, device: torch.device) -> Optional[tuple[dict, FoldResult]]:
        """Fold ``i``'s best weights and result, if it finished in an earlier attempt."""
        path = self._fold(i)
        if not path.is_file():
            return None
        data = torch.load(path, map_location=device, weights_only=False)
        return data["weights"], FoldResult(**data["result"])

    def save_finished(self, i: int, weights: dict, result: FoldResult) -> None:
        data = {"weights": weights, "result": dataclasses.asdict(result)}
        atomic_write(self._fold(i), lambda p: torch.save(data, p))
        (self.folder / TRAINING_FILE).unlink(missing_ok=True)

    def training(self, i: int, device: torch.device) -> Optional[FoldState]:
        """The saved training state of fold ``i`` (None when the running fold saved was another, or none)."""
        path = self.folder / TRAINING_FILE
        if not path.is_file():
            return None
        state = load_fold_state(path, device)
        return state if state.fold == i else None

    def save_training(self, i: int, state: FoldState) -> None:
        state.fold = i
        atomic_write(self.folder / TRAINING_FILE, lambda p: torch.save(state.to_dict(), p))

    def delete(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        for parent in (self.folder.parent, self.folder.parent.parent):
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break


def discard_all(root: Path) -> None:
    """Remove every unit checkpoint under ``root`` (once the leaderboard is complete, none is needed; a unit
    recorded by a worker with another run folder leaves its checkpoint here otherwise)."""
    shutil.rmtree(root, ignore_errors=True)


def discard(root: Optional[Path], seed_key: tuple) -> None:
    """Remove a recorded unit's checkpoint folder (nothing when there is none)."""
    if root is not None:
        UnitCheckpoint(unit_folder(root, seed_key), {}).delete()
