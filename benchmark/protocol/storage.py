"""The Optuna storage that every unit of work is claimed and recorded through.

One storage per run: a journal file in the run folder by default (no server; safe for several
processes on one machine), or any Optuna storage URL (PostgreSQL for several machines). A unit of
work is an Optuna trial: a worker claims it (``RUNNING``, with its identity and a heartbeat in the
trial's user attributes), and records its outcome in it. A trial whose worker died (its process
is gone on this host, or no heartbeat for ``grace_period`` seconds) is failed by whoever notices,
and its work is queued again.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Optional

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

WORKER_ATTR = "worker"
HEARTBEAT_ATTR = "heartbeat"


def create_storage(url: Optional[str], run_dir: Path) -> BaseStorage:
    """The storage at ``url``, or a journal file ``run_dir/optuna.journal`` when ``url`` is None."""
    if url is None:
        from optuna.storages.journal import JournalFileBackend

        path = run_dir / "optuna.journal"
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    return optuna.storages.get_storage(url)


def worker_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(trial: optuna.Trial) -> None:
    """Record this worker's identity and a first heartbeat on a trial it has just taken."""
    trial.set_user_attr(WORKER_ATTR, worker_id())
    trial.set_user_attr(HEARTBEAT_ATTR, time.time())


def beat(trial: optuna.Trial) -> None:
    """Tell the other workers that this trial's worker is alive."""
    trial.set_user_attr(HEARTBEAT_ATTR, time.time())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(trial: FrozenTrial, grace_period: float, now: Optional[float] = None) -> bool:
    """A RUNNING trial whose worker is gone: a dead process on this host, or a heartbeat too old."""
    if trial.state != TrialState.RUNNING:
        return False
    worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
    host, _, pid = worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
        return True
    last = trial.user_attrs.get(HEARTBEAT_ATTR)
    if last is None and trial.datetime_start is not None:
        last = trial.datetime_start.timestamp()
    now = time.time() if now is None else now
    return last is not None and now - float(last) > grace_period


def fail_stale_trials(study: optuna.Study, grace_period: float) -> list[int]:
    """Mark the study's stale RUNNING trials as FAIL; return their numbers."""
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_stale(t, grace_period):
            try:
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                failed.append(t.number)
            except (RuntimeError, ValueError):  # another worker finished or failed it first
                pass
    return failed


def get_study(storage: BaseStorage, name: str, *, direction: str = "maximize",
              sampler: Optional[optuna.samplers.BaseSampler] = None,
              pruner: Optional[optuna.pruners.BasePruner] = None) -> optuna.Study:
    """The study ``name`` in ``storage``, created if absent (several workers may race to create it)."""
    return optuna.create_study(storage=storage, study_name=name, direction=direction, sampler=sampler,
                               pruner=pruner, load_if_exists=True)
