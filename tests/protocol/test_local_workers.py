"""``dml-bench run --workers N``: real worker processes under one parent, the same table as one worker.

The parent is the real CLI in a subprocess; its workers are real processes sharing the run's journal.
With ``protocol.search_order: ordered`` (the default) the results do not depend on how many workers
ran or on their timing: the two-worker run's ``results.csv`` equals the one-worker run's byte for byte.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from benchmark.protocol import storage as st
from benchmark.protocol.faults import ENV
from benchmark.protocol.local_workers import WorkerPlan, plan_workers, worst_status
from tests.protocol.workers import ROOT, assert_every_unit_exactly_once, unit_census

ARGS = ("--preset", "smoke", "--trials", "3", "--no-progress", "--set", "protocol.poll_interval=0.3")


def run(out, *extra, env=None):
    return subprocess.run([sys.executable, str(ROOT / "run_benchmark.py"), "run", "--out", str(out), *ARGS, *extra],
                          cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=900)


def test_auto_uses_every_core_on_a_cpu_and_every_gpu_on_a_gpu_host():
    assert plan_workers("auto", device="cpu", frozen=True, cores=8, gpus=0) == WorkerPlan(8, 1, (None,) * 8)
    assert plan_workers(2, device="cpu", frozen=False, cores=8, gpus=0) == WorkerPlan(2, 4, (None, None))
    assert plan_workers("auto", device="auto", frozen=False, cores=16, gpus=4).gpus == (0, 1, 2, 3)
    frozen = plan_workers("auto", device="auto", frozen=True, cores=16, gpus=2)
    assert frozen.n == 4 and frozen.gpus == (0, 1, 0, 1) and frozen.threads == 4  # two per GPU
    assert plan_workers("auto", device="auto", frozen=True, cores=2, gpus=2).n == 2  # at most a core each


def test_worst_status():
    assert worst_status([0, 0]) == 0
    assert worst_status([0, -signal.SIGKILL, 1]) == 128 + signal.SIGKILL
    assert worst_status([3, 0]) == 3


@pytest.mark.slow
def test_two_workers_give_the_one_worker_table(tmp_path):
    """Same seed, same table, with 1 or 2 workers, given the same CPU threads per worker (``--workers 2``
    gives each of them 1 thread here: a thread count changes float sums, e.g. ROC AUC, in the 7th digit)."""
    one, two = tmp_path / "one", tmp_path / "two"
    first = run(one, "--workers", "1", env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    assert first.returncode == 0, first.stderr[-3000:]
    second = run(two, "--workers", "2", env={"OMP_NUM_THREADS": "", "MKL_NUM_THREADS": ""})
    assert second.returncode == 0, second.stderr[-3000:]
    assert "starting 2 workers" in second.stderr
    assert (one / "results.csv").read_bytes() == (two / "results.csv").read_bytes()
    trials = [pd.read_csv(p / "trials.csv") for p in (one, two)]
    assert trials[0]["params"].tolist() == trials[1]["params"].tolist()
    # the table is printed once, by the parent; each worker wrote its own log
    assert second.stdout.count("Findings") == 1
    logs = sorted((two / "workers").glob("worker-*.log"))
    assert [p.name for p in logs] == ["worker-0.log", "worker-1.log"]
    storage = st.create_storage(None, two)
    assert_every_unit_exactly_once(storage, n_trials=3, n_repeats=2)
    pids = {str(t.user_attrs.get(st.WORKER_ATTR)) for units in unit_census(storage).values()
            for ts in units.values() for t in ts}
    assert len(pids) == 2  # both workers did units


@pytest.mark.slow
def test_a_failing_worker_stops_the_others_and_a_rerun_completes(tmp_path):
    out = tmp_path / "run"
    failed = run(out, "--workers", "2", env={ENV: "repeat.trained"})  # each worker SIGKILLs itself there
    assert failed.returncode == 128 + signal.SIGKILL, failed.stderr[-3000:]
    lines = [ln for ln in failed.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "worker" in lines[0] and "log" in lines[0], failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    # the first invocation's workers: the one that killed itself (its trial left RUNNING) and the one the parent
    # stopped with SIGTERM (its trial recorded FAIL); only their units may have a second attempt
    killed = {int(str(t.user_attrs[st.WORKER_ATTR]).rsplit(":", 1)[1])
              for units in unit_census(st.create_storage(None, out)).values() for ts in units.values() for t in ts
              if t.state.name in ("RUNNING", "FAIL")}
    assert killed
    again = run(out, "--workers", "2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert_every_unit_exactly_once(st.create_storage(None, out), n_trials=3, n_repeats=2, killed_pids=killed)
