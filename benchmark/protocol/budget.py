"""Compute budgets of a search: ``protocol.budget_iterations`` training iterations per method and dataset.

Definitions. A search trial's *usage* is the training iterations it recorded (``fold_iterations``
summed, a fold stopped mid-way included). A search's *spending* is the usage summed over its COMPLETE
and PRUNED trials: the attempts whose results it keeps. A failed attempt (crashed, killed, taken over
from a dead worker) is redone, and its partial work is not counted (``trials.csv`` lists it).

Guarantee, with any number of workers and across restarts: the spending never exceeds the budget,
and the search is done once less than one epoch (``iterations_per_epoch``) of the budget is left and
no trial runs (or ``n_trials`` slots are finished, whichever comes first).

How. A trial that owns its slot gets an *allowance* before it trains, recorded on it as
``budget_allowance``, and trains at most that (``Workbench.train_folds(max_iterations=...)``, in whole
epochs; a trial stopped by its allowance is recorded PRUNED, since not every fold trained to its end).
The allowance of trial *n* is the budget less what the trials numbered below *n* hold: a finished
trial its usage, a running trial its allowance (a whole trial's maximum while it has none yet), a
queued trial a whole trial's maximum, a failed trial nothing; and at most a whole trial's maximum.
The storage hands out trial numbers atomically, so every trial below *n* exists when *n* reads them,
and whatever later happens to one of them (finishing, failing, recording its allowance) never makes it
hold less than *n* assumed; so for the highest-numbered kept trial *n*, the kept trials below it used
at most what *n* left for them, and the spending is at most the budget. No lock is needed.
With one worker every trial below *n* has finished when *n* starts, so the allowance is exactly what is
left, and a slot redone after a restart gets the same allowance (and the same training) as the attempt
that was cut off.
"""

from __future__ import annotations

from typing import Iterable

from optuna.trial import FrozenTrial, TrialState

ALLOWANCE = "budget_allowance"
_KEPT = (TrialState.COMPLETE, TrialState.PRUNED)


def usage(trial: FrozenTrial) -> int:
    """The training iterations ``trial`` recorded (0 before its first fold ends)."""
    return int(sum(trial.user_attrs.get("fold_iterations", [])))


def held(trial: FrozenTrial, most: int) -> int:
    """What ``trial`` holds of the budget: its usage once finished, its allowance while it runs."""
    if trial.state in _KEPT:
        return usage(trial)
    if trial.state == TrialState.RUNNING:
        return int(trial.user_attrs.get(ALLOWANCE, most))
    if trial.state == TrialState.WAITING:
        return most
    return 0


def allowance(trials: Iterable[FrozenTrial], number: int, budget: int, most: int) -> int:
    """The iterations trial ``number`` may train: the budget less what the trials below it hold, at most ``most``.

    ``trials`` must be read after trial ``number`` was created; ``most`` is a whole trial's maximum.
    """
    below = sum(held(t, most) for t in trials if t.number < number)
    return max(0, min(most, budget - below))


def spent(trials: Iterable[FrozenTrial]) -> int:
    """The search's spending: the usage of its COMPLETE and PRUNED trials."""
    return sum(usage(t) for t in trials if t.state in _KEPT)


def left(trials: Iterable[FrozenTrial], budget: int, most: int) -> int:
    """The budget less what finished trials used and running trials hold (queued ones hold nothing yet)."""
    return budget - sum(held(t, most) for t in trials if t.state != TrialState.WAITING)
