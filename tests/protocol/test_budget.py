"""Compute budgets: allowances in trial-number order, a budget spent exactly by one worker and by racing ones."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from benchmark.protocol import budget
from benchmark.protocol import storage as st
from benchmark.protocol.fidelity import PRUNED_ATTR
from benchmark.protocol.units import BLOCKED, DONE, RAN, SearchStage
from benchmark.protocol.workbench import IterationCapReached
from tests.protocol.search_bench import IPE, TRIAL_MAX, run_to_end, stages

MOST = 100


def study_with(*specs):
    """An in-memory study holding one trial per spec: (state, fold_iterations or None, allowance or None)."""
    study = optuna.create_study(direction="maximize")
    for state, folds, allowance in specs:
        attrs = {}
        if folds is not None:
            attrs["fold_iterations"] = folds
        if allowance is not None:
            attrs[budget.ALLOWANCE] = allowance
        if state == TrialState.WAITING:
            study.enqueue_trial({}, user_attrs=attrs)
        elif state == TrialState.RUNNING:
            trial = study.ask()
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
        else:
            study.add_trial(optuna.trial.create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                                                      user_attrs=attrs))
    return study.get_trials(deepcopy=False)


def test_what_each_trial_holds():
    trials = study_with((TrialState.COMPLETE, [30, 20], None), (TrialState.PRUNED, [7], None),
                        (TrialState.FAIL, [40], 90), (TrialState.RUNNING, [10], 60), (TrialState.RUNNING, None, None),
                        (TrialState.WAITING, None, None))
    assert [budget.held(t, MOST) for t in trials] == [50, 7, 0, 60, MOST, MOST]
    assert budget.spent(trials) == 57  # kept trials only: the failed attempt's 40 are not counted
    assert budget.left(trials, 1000, MOST) == 1000 - (50 + 7 + 60 + MOST)  # a queued trial holds nothing yet
    # trial 4 (running, no allowance yet) gets what the trials below it leave: 1000 - 50 - 7 - 0 - 60
    assert budget.allowance(trials, 4, 1000, MOST) == MOST
    assert budget.allowance(trials, 4, 200, MOST) == 200 - 117
    assert budget.allowance(trials, 6, 200, MOST) == 0  # never negative
    assert budget.allowance(trials, 0, 200, MOST) == MOST  # nothing below the first trial


def test_one_worker_spends_the_budget_exactly(tmp_path):
    limit = 2 * TRIAL_MAX + 3 * IPE + 2  # two whole trials, then 3 epochs and 2 iterations: less than an epoch left
    search, repeats = stages(tmp_path, budget_iterations=limit, n_trials=20)
    run_to_end(search)
    trials = search.trials()
    kept = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert budget.spent(trials) <= limit and limit - budget.spent(trials) < IPE
    assert all(budget.usage(t) <= t.user_attrs[budget.ALLOWANCE] for t in kept)
    assert search.is_done() and search.step() == DONE
    cut = [t for t in kept if t.user_attrs.get(PRUNED_ATTR, "").startswith("budget")]
    assert len(cut) >= 1 and cut[-1].number == max(t.number for t in kept)  # the last trial ran out
    assert not any(t.state == TrialState.FAIL for t in trials)
    run_to_end(repeats)  # the best complete configuration is retrained
    assert repeats.study.user_attrs["params"] == search.best_trial().params


def test_a_fold_cut_by_the_cap_raises_after_recording_it(tmp_path):
    search, _ = stages(tmp_path)
    ended = []
    with pytest.raises(IterationCapReached, match="fold 0 was cut to 3 of its 4 epochs"):
        search.bench.train_folds("contrastive", {}, search.dcfg, ("t",), max_iterations=3 * IPE + 4,
                                 on_fold_end=lambda i, r: ended.append((i, r.iterations)))
    assert ended == [(0, 3 * IPE)]  # recorded first (a validation always improves at epoch 1: no early stop)
    with pytest.raises(IterationCapReached, match="less than an epoch"):
        search.bench.train_folds("contrastive", {}, search.dcfg, ("t",), max_iterations=IPE - 1)
    seen = []
    out = search.bench.train_folds("contrastive", {}, search.dcfg, ("t",), max_iterations=TRIAL_MAX,
                                   on_validation=lambda *a: seen.append(a))
    assert sum(r.iterations for _, r in out) <= TRIAL_MAX
    assert [(f, e) for f, e, _, _ in seen] == [(f, e) for f, (_, r) in enumerate(out) for e, _, _ in r.curve]


def test_racing_workers_never_overspend(tmp_path):
    """While one worker trains its trial, a second worker claims and trains others: they share the budget.

    Two workers train slots of one search at once only in the concurrent order (ordered, the second waits)."""
    limit = TRIAL_MAX + TRIAL_MAX // 2
    search, _ = stages(tmp_path, budget_iterations=limit, n_trials=20, search_order="concurrent")
    other = SearchStage(search.bench, st.create_storage(None, tmp_path / "run"), search.dcfg, search.method)
    real = search.bench.train_folds
    seen = {}

    def racing(*args, **kwargs):  # this worker holds slot 0 (its allowance recorded); the other one steps
        if not seen:
            seen["mine"] = kwargs["max_iterations"]
            seen["other"] = [other.step() for _ in range(3)]
        return real(*args, **kwargs)

    search.bench.train_folds = racing
    assert search.step() == RAN
    assert seen["mine"] == TRIAL_MAX  # the first trial gets a whole trial
    # the other worker got the half trial left beside this one's allowance, then found nothing more
    assert seen["other"][0] == RAN and set(seen["other"][1:]) <= {BLOCKED, DONE}
    allowances = {t.user_attrs["slot"]: t.user_attrs.get(budget.ALLOWANCE) for t in search.trials()
                  if "dropped" not in t.user_attrs}
    assert allowances[0] == TRIAL_MAX and allowances[1] == limit - TRIAL_MAX
    assert budget.spent(search.trials()) <= limit
    run_to_end(search)
    assert budget.spent(search.trials()) <= limit and limit - budget.spent(search.trials()) < IPE


def test_an_ordered_search_makes_a_second_worker_wait_for_the_running_slot(tmp_path):
    """Ordered (the default), slot k starts once slots < k are finished: a second worker is blocked while
    slot 0 trains, then takes slot 1, sampled against slot 0's result."""
    search, _ = stages(tmp_path, n_trials=3)
    other = SearchStage(search.bench, st.create_storage(None, tmp_path / "run"), search.dcfg, search.method)
    real = search.bench.train_folds
    seen = {}

    def racing(*args, **kwargs):
        if not seen:
            seen["other"] = other.step()
        return real(*args, **kwargs)

    search.bench.train_folds = racing
    assert search.step() == RAN and seen["other"] == BLOCKED
    search.bench.train_folds = real
    assert other.step() == RAN
    slots = {t.user_attrs["slot"]: t.state.name for t in other.trials() if "dropped" not in t.user_attrs}
    assert slots == {0: "COMPLETE", 1: "COMPLETE"}
