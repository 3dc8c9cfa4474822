"""An iteration budget honoured exactly by real worker processes: one, three at once, and one killed then rerun.

"Exactly": per search (method, dataset), the training iterations recorded by its kept trials (COMPLETE and
PRUNED) sum to at most ``protocol.budget_iterations``, less than one epoch of it is left when the run ends,
no trial trained past its allowance, and every slot was done once (a second attempt only where a killed
worker held the first).
"""

from __future__ import annotations

import signal

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from benchmark.protocol import budget
from benchmark.protocol import storage as st
from benchmark.protocol.faults import ENV
from tests.protocol.workers import finish, start_workers

pytestmark = pytest.mark.slow
LIMIT, EPOCH = 150, 10  # the smoke preset: 10 iterations per epoch, here 3 epochs x 2 folds = 60 per trial at most
ARGS = ("--trials", "8", "--set", f"protocol.budget_iterations={LIMIT}", "--set", "training.max_epochs=3",
        "--set", "training.patience=1", "--set", "training.regime=frozen", "--set", "frozen.views=2",
        "--set", "training.threads=1")
KEPT = (TrialState.COMPLETE, TrialState.PRUNED)


def searches(out) -> dict[str, list]:
    storage = st.create_storage(None, out)
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).get_trials(deepcopy=False)
            for s in optuna.get_all_study_summaries(storage) if s.study_name.endswith("::search")}


def assert_budget_spent_exactly(out, killed_pids=()) -> None:
    found = searches(out)
    assert len(found) == 2
    trials_csv = pd.read_csv(out / "trials.csv")
    for name, trials in found.items():
        kept = [t for t in trials if t.state in KEPT]
        spent = budget.spent(trials)
        assert LIMIT - EPOCH < spent <= LIMIT, (name, spent)
        assert all(budget.usage(t) <= t.user_attrs[budget.ALLOWANCE] for t in kept), name
        slots = [t.user_attrs["slot"] for t in kept]
        assert len(slots) == len(set(slots)), (name, slots)  # never a slot twice
        for t in trials:
            if t.state not in KEPT and "dropped" not in t.user_attrs and t.state != TrialState.WAITING:
                pid = int(str(t.user_attrs.get(st.WORKER_ATTR, ":0")).rsplit(":", 1)[1])
                assert pid in killed_pids, (name, t.number, t.state.name)
        method = name.split("::")[1]
        rows = trials_csv[(trials_csv["method"] == method) & trials_csv["state"].isin(["COMPLETE", "PRUNED"])]
        assert rows["iterations"].sum() == spent and len(rows) == len(kept)
    results = pd.read_csv(out / "results.csv")
    assert set(results["method"]) == {"pretrained", "raw_trunk", "contrastive", "multi_similarity"}


def kept_trials(out) -> pd.DataFrame:
    rows = pd.read_csv(out / "trials.csv")
    rows = rows[rows["state"].isin(["COMPLETE", "PRUNED"])]
    return rows[["method", "slot", "state", "value", "iterations", "params"]].sort_values(
        ["method", "slot"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    out = tmp_path_factory.mktemp("budget") / "run"
    (code, err), = finish(start_workers(1, out, *ARGS))
    assert code == 0, err[-3000:]
    return out


def test_one_worker_spends_the_budget_exactly(one_worker):
    assert_budget_spent_exactly(one_worker)
    assert (kept_trials(one_worker)["state"] == "PRUNED").any()  # the last trial of a search ran out of budget


def test_three_workers_spend_the_budget_exactly(tmp_path):
    out = tmp_path / "run"
    results = finish(start_workers(3, out, *ARGS))
    assert [code for code, _ in results] == [0, 0, 0], [err[-2000:] for _, err in results]
    assert_budget_spent_exactly(out)


def test_a_killed_worker_resumes_to_the_same_search_within_the_budget(one_worker, tmp_path):
    out = tmp_path / "run"
    victim = start_workers(1, out, *ARGS, env={ENV: "search.fold_end#5"})[0]  # in the third trial
    (code, err), = finish([victim])
    assert code == -signal.SIGKILL, err[-2000:]
    (code, err), = finish(start_workers(1, out, *ARGS))
    assert code == 0, err[-3000:]
    assert_budget_spent_exactly(out, killed_pids={victim.pid})
    pd.testing.assert_frame_equal(kept_trials(out), kept_trials(one_worker))
