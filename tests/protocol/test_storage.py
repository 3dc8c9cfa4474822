"""Claiming work through the storage: stale trials of dead workers are failed and their work queued again."""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
from optuna.trial import TrialState

from benchmark.protocol import storage as st


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_journal_storage_in_run_dir(tmp_path):
    storage = st.create_storage(None, tmp_path)
    study = st.get_study(storage, "s")
    study.enqueue_trial({}, user_attrs={"unit": 0})
    assert (tmp_path / "optuna.journal").is_file()
    again = st.get_study(st.create_storage(None, tmp_path), "s")  # a second process sees the same work
    assert [t.state for t in again.get_trials()] == [TrialState.WAITING]


def test_trial_of_dead_local_worker_is_stale(tmp_path):
    study = st.get_study(st.create_storage(None, tmp_path), "s")
    trial = study.ask()
    trial.set_user_attr(st.WORKER_ATTR, f"{st.worker_id().rsplit(':', 1)[0]}:{dead_pid()}")
    trial.set_user_attr(st.HEARTBEAT_ATTR, time.time())
    trial.set_user_attr(st.WORKER_NS_ATTR, "another container|pid:[1]")
    assert st.fail_stale_trials(study, grace_period=3600) == []  # same host name, other pid namespace: heartbeat only
    trial.set_user_attr(st.WORKER_NS_ATTR, st.process_namespace())
    assert st.fail_stale_trials(study, grace_period=3600) == [trial.number]
    assert study.get_trials()[0].state == TrialState.FAIL


def test_live_worker_keeps_its_trial_until_heartbeat_expires(tmp_path):
    study = st.get_study(st.create_storage(None, tmp_path), "s")
    trial = study.ask()
    st.claim(trial)  # this (live) process
    assert st.fail_stale_trials(study, grace_period=3600) == []
    frozen = study.get_trials()[0]
    assert not st.is_stale(frozen, 3600)
    assert st.is_stale(frozen, 3600, now=time.time() + 7200)  # another machine's worker that stopped beating
    other_host = optuna.trial.FrozenTrial(
        number=1, state=TrialState.RUNNING, value=None, datetime_start=None, datetime_complete=None, params={},
        distributions={}, user_attrs={st.WORKER_ATTR: "elsewhere:1", st.HEARTBEAT_ATTR: time.time()},
        system_attrs={}, intermediate_values={}, trial_id=1)
    assert not st.is_stale(other_host, 60)
    assert st.is_stale(other_host, 60, now=time.time() + 61)


def test_a_trial_taken_but_never_claimed_is_stale_after_the_claim_window(tmp_path):
    """A worker that died or gave up on the storage between ``ask`` and ``claim`` left no identity to check."""
    study = st.get_study(st.create_storage(None, tmp_path), "s")
    study.ask()  # never claimed
    frozen = study.get_trials()[0]
    window = st.unclaimed_after(5)
    assert window == 5 + st.CLAIM_MARGIN
    assert not st.is_stale(frozen, 3600, claim_window=window)
    assert not st.is_stale(frozen, 3600, now=time.time() + window + 1)  # without a window: the grace period only
    assert st.is_stale(frozen, 3600, now=time.time() + window + 1, claim_window=window)
    claimed = study.ask()
    st.claim(claimed)
    frozen = study.get_trials()[1]
    assert not st.is_stale(frozen, 3600, now=time.time() + window + 1, claim_window=window)  # a live worker's
