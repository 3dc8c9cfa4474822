"""``protocol.sampler: sobol_gp``: a scrambled Sobol start, then a Gaussian process with expected improvement.

The reality-check code searched with Ax's default: Sobol points for the first max(5, #params) trials
(``protocol.n_startup_trials: auto``), then a GP with expected improvement. Here:

* slot 0 is the method's defaults (enqueued, as for every sampler); slots 1 .. n_startup take the
  points 0 .. n_startup - 1 of one scrambled Sobol sequence (Optuna's ``QMCSampler``), seeded once per
  search (``sequence_seed``), so the start is one low-discrepancy design whatever the slots' seeds;
* later slots: Optuna's ``GPSampler`` (Matern 5/2 kernel, log expected improvement), seeded by the slot.

A slot's Sobol point is chosen by the number of finished trials (COMPLETE or PRUNED) before it, which
with ``protocol.search_order: ordered`` is the slot number, so a redone slot draws the same point.
Not as published: Ax gave the GP each observation's standard error over the folds; Optuna's GP
sampler has no noise input (it fits one noise variance), so the folds' standard error is not passed.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

#: The trials a startup point is counted from.
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def auto_startup_trials(n_params: int) -> int:
    """Ax's Sobol start: max(5, number of searched parameters)."""
    return max(5, n_params)


def _finished(study: Study) -> int:
    return len(study.get_trials(deepcopy=False, states=_FINISHED))


class _SlotSobol(optuna.samplers.QMCSampler):
    """Optuna's scrambled Sobol sampler, taking point ``finished - 1`` (slot k: point k - 1) instead of
    counting its draws in the storage (a redone slot would otherwise take the next point)."""

    def _find_sample_id(self, study: Study, search_space: dict[str, BaseDistribution]) -> int:
        return max(0, _finished(study) - 1)


class SobolGPSampler(optuna.samplers.BaseSampler):
    """Sobol points while at most ``n_startup`` trials after the defaults have finished, then the GP."""

    def __init__(self, *, seed: int, n_startup: int, sequence_seed: int) -> None:
        self.n_startup = n_startup
        with warnings.catch_warnings():  # "QMCSampler is experimental": its interface, not its points
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._sobol = _SlotSobol(qmc_type="sobol", scramble=True, seed=sequence_seed,
                                     independent_sampler=optuna.samplers.RandomSampler(seed=seed),
                                     warn_independent_sampling=False)
        self._gp = optuna.samplers.GPSampler(seed=seed, n_startup_trials=0,
                                             independent_sampler=optuna.samplers.RandomSampler(seed=seed),
                                             warn_independent_sampling=False)

    def phase(self, study: Study) -> optuna.samplers.BaseSampler:
        """The Sobol sampler for slots 0 .. n_startup (slot 0: the enqueued defaults), then the GP."""
        return self._sobol if _finished(study) <= self.n_startup else self._gp

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.phase(study).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.phase(study).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.phase(study).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.phase(study).before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Optional[Sequence[float]]) -> None:
        self.phase(study).after_trial(study, trial, state, values)
