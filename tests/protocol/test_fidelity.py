"""Multi-fidelity pruning: what a trial reports and when; pruned trials recorded, never counted as configurations."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from benchmark.config import TrainingConfig
from benchmark.protocol.export import trial_rows
from benchmark.protocol.fidelity import PRUNED_ATTR, PRUNED_FOLD, TrialProgress, make_pruner
from benchmark.protocol.units import Stages
from benchmark.reporting.diagnostics import search_diagnostics
from tests.protocol.search_bench import FOLDS, TRIAL_MAX, run_to_end, stages


@dataclass
class Fold:
    best_value: float
    iterations: int
    status: str = "completed"


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def new_trial(pruner=None):
    study = optuna.create_study(direction="maximize", pruner=pruner or optuna.pruners.NopPruner())
    return study, study.ask()


def test_hyperband_reports_the_running_mean_at_cumulative_iterations():
    study, trial = new_trial()
    progress = TrialProgress(trial, "hyperband", n_folds=2)
    progress.validation(0, 1, 20, 0.1)
    progress.validation(0, 2, 40, 0.3)
    progress.validation(0, 3, 60, 0.2)  # the fold's best so far stays 0.3
    progress.fold_end(0, Fold(0.3, 60))
    progress.validation(1, 1, 20, 0.2)  # fold 1 after 20 iterations: step 60 + 20
    progress.validation(1, 2, 40, 0.5)
    steps = study.trials[0].intermediate_values
    assert steps == {20: 0.1, 40: 0.3, 60: 0.3, 80: pytest.approx(0.25), 100: pytest.approx(0.4)}


def test_median_reports_once_per_fold_at_its_index():
    study, trial = new_trial()
    progress = TrialProgress(trial, "median", n_folds=3)
    progress.validation(0, 1, 20, 0.9)  # validations are not reported by the median rule
    progress.fold_end(0, Fold(0.4, 20))
    progress.fold_end(1, Fold(0.6, 30))
    assert study.trials[0].intermediate_values == {0: 0.4, 1: pytest.approx(0.5)}


@pytest.mark.parametrize("kind", ["median", "hyperband"])
def test_a_pruned_trial_records_its_folds_so_far(kind):
    study, trial = new_trial(AlwaysPrune())
    progress = TrialProgress(trial, kind, n_folds=3)
    with pytest.raises(optuna.TrialPruned):
        progress.validation(0, 1, 10, 0.2)
        progress.validation(0, 2, 20, 0.3)
        progress.fold_end(0, Fold(0.3, 20))
    attrs = study.trials[0].user_attrs
    if kind == "hyperband":  # stopped mid-fold at its first validation: the fold so far, marked pruned
        assert (attrs["fold_values"], attrs["fold_status"], attrs["fold_iterations"]) == ([0.2], [PRUNED_FOLD], [10])
    else:  # stopped at the fold's end
        assert (attrs["fold_values"], attrs["fold_status"], attrs["fold_iterations"]) == ([0.3], ["completed"], [20])
    assert attrs[PRUNED_ATTR].startswith(kind)


def test_the_median_rule_never_prunes_after_the_last_fold_and_slot_zero_never():
    study, trial = new_trial(AlwaysPrune())
    progress = TrialProgress(trial, "median", n_folds=2)
    with pytest.raises(optuna.TrialPruned):
        progress.fold_end(0, Fold(0.3, 20))
    study, trial = new_trial(AlwaysPrune())
    TrialProgress(trial, "median", n_folds=1).fold_end(0, Fold(0.3, 20))  # the last fold: the trial completes
    study, trial = new_trial(AlwaysPrune())
    defaults = TrialProgress(trial, "hyperband", n_folds=2, prunable=False)
    for fold in range(2):
        for epoch in range(1, 4):
            defaults.validation(fold, epoch, 10 * epoch, 0.1)
        defaults.fold_end(fold, Fold(0.1, 30))
    assert len(study.trials[0].intermediate_values) == 6  # reported, never pruned


def test_hyperband_rungs_are_one_validation_interval_times_powers_of_three():
    tcfg = TrainingConfig(iterations_per_epoch=10, max_epochs=9, val_interval=2)
    pruner = make_pruner("hyperband", n_folds=3, tcfg=tcfg)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.enqueue_trial({})
    # a first trial is never pruned (nothing to compare with); then one worse at every step
    for value in (0.9, 0.1):
        trial = study.ask()
        progress = TrialProgress(trial, "hyperband", n_folds=3)
        try:
            for it in range(20, 271, 20):
                progress.validation(it // 90, it // 10, it, value)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
    # min_resource 2 x 10 = 20 iterations, max 3 x 9 x 10 = 270: the worse trial stops at a rung (20, 60 or 180)
    # of its bracket, or runs to the end in the bracket that has no rung below 270
    worse = study.trials[1]
    assert worse.state == TrialState.PRUNED or worse.last_step == 260
    if worse.state == TrialState.PRUNED:
        assert worse.last_step in (20, 60, 180)


def _pruned_search(tmp_path, **protocol):
    search, repeats = stages(tmp_path, **protocol)
    run_to_end(search)
    return search, repeats


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_pruned_trials_are_recorded_and_never_complete_configurations(tmp_path, pruner):
    search, repeats = _pruned_search(tmp_path, pruner=pruner, n_trials=14, n_startup_trials=1)
    owners = search.owners()
    pruned = [t for t in owners.values() if t.state == TrialState.PRUNED]
    complete = [t for t in owners.values() if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 14
    assert owners[0].state == TrialState.COMPLETE  # the defaults are never pruned
    for t in pruned:
        assert t.user_attrs[PRUNED_ATTR].startswith(pruner)
        trained = t.user_attrs["fold_iterations"]
        assert len(trained) < FOLDS or t.user_attrs["fold_status"][-1] == PRUNED_FOLD
    assert search.best_trial() in complete
    assert search.best_trial().value == max(t.value for t in complete)
    rows = pd.DataFrame(trial_rows(Stages([], {("features", "contrastive"): search}, {})))
    assert sorted(rows["state"]) == sorted(t.state.name for t in owners.values())
    shown = rows[rows["state"] == "PRUNED"]
    assert shown["value"].isna().all() and shown["note"].str.startswith(f"pruned ({pruner}").all()
    assert (shown["iterations"] == [sum(t.user_attrs["fold_iterations"]) for t in pruned]).all()
    run_to_end(repeats)
    assert repeats.study.user_attrs["params"] == search.best_trial().params


def test_a_pruned_trial_is_never_the_best_even_with_a_higher_value(tmp_path):
    """Optuna gives a pruned trial its last intermediate value: the search, trials.csv and the diagnostics ignore it."""
    search, _ = stages(tmp_path, n_trials=3)
    assert search.step() == "ran"  # slot 0, the defaults, complete
    high = max(t.value for t in search.trials()) + 0.5
    trial = search.study.ask()  # slot 1: reported high, then pruned
    trial.suggest_float("pos_margin", -0.2, 2.0)
    trial.set_user_attr("slot", 1)
    trial.report(high, 10)
    search.study.tell(trial, state=TrialState.PRUNED)
    assert search.trials()[-1].value == high
    assert search.step() == "ran" and search.is_done()
    assert search.best_trial().state == TrialState.COMPLETE and search.best_trial().value < high
    rows = pd.DataFrame(trial_rows(Stages([], {("features", "contrastive"): search}, {})))
    assert math.isnan(rows.loc[rows["state"] == "PRUNED", "value"].iloc[0])
    diag = search_diagnostics(rows)
    assert diag["best_trial"].iloc[0] == search.best_trial().number
    assert json.loads(rows.loc[rows["trial"] == search.best_trial().number, "params"].iloc[0]) == \
        search.best_trial().params


@pytest.mark.parametrize("sampler", ["tpe", "gp", "random"])
def test_every_sampler_searches_under_hyperband_and_a_budget(tmp_path, sampler):
    search, _ = stages(tmp_path, sampler=sampler, pruner="hyperband", n_trials=30, n_startup_trials=2,
                       budget_iterations=6 * TRIAL_MAX)
    run_to_end(search)
    owners = search.owners()
    assert any(t.state == TrialState.PRUNED for t in owners.values())
    assert len(owners) > 6  # pruned trials left room for more than the 6 whole trials the budget holds
    params = [tuple(sorted(t.params.items())) for t in owners.values()]
    assert len(set(params)) == len(params)
    assert search.best_trial().state == TrialState.COMPLETE
