"""Multi-fidelity pruning of search trials: what a trial reports to Optuna, at which step, and the pruner that reads it.

``protocol.pruner`` chooses one of:

* ``none``: nothing is reported; every trial trains every fold (the reality check's protocol).
* ``median``: at the end of every fold but the last, the running mean of the folds' best validation
  MAP@R, at step = the fold's index (0, 1, ...); Optuna's ``MedianPruner`` (after 5 finished trials)
  prunes a trial whose running mean is below the median of earlier trials at the same fold.
* ``hyperband``: after every validation, the mean over the folds begun so far of each fold's best
  validation MAP@R up to now (the fold in progress counts with its best so far), at step = the
  training iterations the trial has done so far, **summed over its folds** (a cumulative step: fold 1's
  first validation comes after all of fold 0's iterations). ``HyperbandPruner`` with ``min_resource`` =
  the iterations of one validation interval, ``max_resource`` = a trial's maximum (n_folds x max_epochs x
  iterations_per_epoch) and ``reduction_factor`` 3: successive halving in brackets, a trial continuing
  past a rung only if it is in the top third of the trials that reached that rung in its bracket. Since
  the step counts iterations, a rung compares trials after the same compute, whichever fold they are in.

Slot 0 (the method's defaults) reports but is never pruned, so every search keeps a complete
configuration. A pruned trial is recorded PRUNED with its folds so far (``fold_values``,
``fold_status``, ``fold_iterations``; a fold stopped mid-way has status ``pruned`` and its best value and
iterations up to then) and why (``pruned``); it is never chosen as the best configuration.
"""

from __future__ import annotations

from typing import Optional

import optuna

from benchmark.config import TrainingConfig

NONE, MEDIAN, HYPERBAND = "none", "median", "hyperband"
#: The trial's user attribute that says why it was pruned.
PRUNED_ATTR = "pruned"
#: ``fold_status`` of a fold stopped by the pruner before its end.
PRUNED_FOLD = "pruned"
#: Finished trials before the median rule prunes anything.
MEDIAN_STARTUP_TRIALS = 5
HYPERBAND_REDUCTION_FACTOR = 3

#: ``protocol.pruner`` values (checked by ``benchmark.protocol.run_config``).
PRUNERS = (NONE, MEDIAN, HYPERBAND)

def trial_iterations(n_folds: int, tcfg: TrainingConfig) -> int:
    """The most training iterations a search trial can take: every fold to ``max_epochs``."""
    return n_folds * tcfg.max_epochs * tcfg.iterations_per_epoch


def make_pruner(kind: str, *, n_folds: int, tcfg: TrainingConfig) -> optuna.pruners.BasePruner:
    """The Optuna pruner of ``protocol.pruner`` ``kind`` for trials of ``n_folds`` folds trained with ``tcfg``."""
    if kind == MEDIAN:
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=0)
    if kind == HYPERBAND:
        return optuna.pruners.HyperbandPruner(min_resource=tcfg.val_interval * tcfg.iterations_per_epoch,
                                              max_resource=trial_iterations(n_folds, tcfg),
                                              reduction_factor=HYPERBAND_REDUCTION_FACTOR)
    if kind == NONE:
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {kind!r}")


class TrialProgress:
    """One search trial's folds as they train: records them on the trial, reports to the pruner, prunes.

    ``fold_end(fold, result)`` after each fold and ``validation(fold, epoch, iteration, value)`` after
    each validation (``Workbench.train_folds``' callbacks); either raises ``optuna.TrialPruned`` when
    the pruner says so (never when ``prunable`` is False).
    """

    def __init__(self, trial: optuna.Trial, kind: str, n_folds: int, *, prunable: bool = True) -> None:
        self.trial, self.kind, self.n_folds, self.prunable = trial, kind, n_folds, prunable
        self.values: list[float] = []
        self.statuses: list[str] = []
        self.iterations: list[int] = []
        #: The fold in progress: (best value so far, iterations so far), None between folds.
        self._current: Optional[tuple[float, int]] = None

    def mean(self) -> float:
        """The mean of the finished folds' best values, the fold in progress counting with its best so far."""
        values = self.values + ([self._current[0]] if self._current else [])
        return sum(values) / len(values)

    def total_iterations(self) -> int:
        return sum(self.iterations) + (self._current[1] if self._current else 0)

    def fold_end(self, fold: int, result) -> None:
        self._current = None
        self.values.append(result.best_value)
        self.statuses.append(result.status)
        self.iterations.append(result.iterations)
        self.record()
        if self.kind == MEDIAN:
            mean = self.mean()
            self.trial.report(mean, fold)
            if fold + 1 < self.n_folds and self._should_prune():
                self._prune(f"median: running mean {mean:.4f} after fold {fold} below the median")

    def validation(self, fold: int, epoch: int, iteration: int, value: float) -> None:
        best = max(value, self._current[0]) if self._current else value
        self._current = (best, iteration)
        if self.kind != HYPERBAND:
            return
        step, mean = self.total_iterations(), self.mean()
        self.trial.report(mean, step)
        if self._should_prune():
            self._prune(f"hyperband: mean {mean:.4f} at fold {fold}, epoch {epoch} (step {step}) not in its "
                        f"rung's top 1/{HYPERBAND_REDUCTION_FACTOR}")

    def record(self, fold_in_progress: str = "") -> None:
        """Write the folds so far on the trial; ``fold_in_progress`` is the status of a fold cut mid-way."""
        values, statuses, iterations = list(self.values), list(self.statuses), list(self.iterations)
        if self._current and fold_in_progress:
            values.append(self._current[0])
            statuses.append(fold_in_progress)
            iterations.append(self._current[1])
        self.trial.set_user_attr("fold_values", values)
        self.trial.set_user_attr("fold_status", statuses)
        self.trial.set_user_attr("fold_iterations", iterations)

    def _should_prune(self) -> bool:
        return self.prunable and self.trial.should_prune()

    def _prune(self, why: str) -> None:
        self.record(PRUNED_FOLD)
        self.trial.set_user_attr(PRUNED_ATTR, why)
        raise optuna.TrialPruned(why)
