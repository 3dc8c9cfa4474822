"""Several real worker processes on one leaderboard (journal and PostgreSQL), SIGKILL and resume, a torn journal.

These run the CLI as separate processes, the way users start workers: every unit must be done exactly
once, every worker must exit 0, and a worker killed at any point must leave a run that resumes to the
same results as a run that was never interrupted.
"""

from __future__ import annotations

import shutil
import socket
import signal
import subprocess

import pandas as pd
import pytest

from benchmark.protocol import storage as st
from benchmark.protocol.faults import ENV, POINTS
from tests.protocol.workers import (
    assert_every_unit_exactly_once,
    finish,
    fresh_postgres_database,
    sorted_results,
    start_workers,
    worker_command,
)

pytestmark = pytest.mark.slow
TRIALS = ["--trials", "3"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted single-worker run of the smoke leaderboard."""
    out = tmp_path_factory.mktemp("reference") / "run"
    (code, err), = finish(start_workers(1, out))
    assert code == 0, err
    return out


def test_three_workers_on_the_journal_do_every_unit_once(tmp_path):
    out = tmp_path / "run"
    results = finish(start_workers(3, out, *TRIALS))
    assert [code for code, _ in results] == [0, 0, 0], [err[-2000:] for _, err in results]
    assert not any("Traceback" in err for _, err in results)
    assert_every_unit_exactly_once(st.create_storage(None, out), n_trials=3, n_repeats=2)
    assert len(pd.read_csv(out / "results.csv").groupby(["method", "repeat"])) == 2 + 2 * 2  # with Raw trunk
    invocations = pd.read_json(out / "provenance.json")["invocations"]
    assert len(invocations) == 3  # every worker's invocation kept
    assert not list(out.rglob(".*.tmp*"))


def test_three_workers_on_a_fresh_postgres_database(tmp_path):
    with fresh_postgres_database() as url:
        out = tmp_path / "run"
        results = finish(start_workers(3, out, *TRIALS, "--storage", url))
        assert [code for code, _ in results] == [0, 0, 0], [err[-2000:] for _, err in results]
        assert_every_unit_exactly_once(st.create_storage(url, out), n_trials=3, n_repeats=2)
        assert not (out / "optuna.journal").exists()


def test_a_killed_worker_is_replaced_without_taking_over_live_ones(tmp_path):
    """Three workers, one SIGKILLed in the middle, a 2 s grace period: live workers keep their units."""
    with fresh_postgres_database() as url:
        out = tmp_path / "run"
        args = (*TRIALS, "--storage", url, "--set", "protocol.grace_period=2")
        procs = start_workers(2, out, *args)
        victim = start_workers(1, out, *args, env={ENV: "search.fold_end#2"})[0]
        results = finish(procs + [victim])
        assert [code for code, _ in results] == [0, 0, -signal.SIGKILL], [err[-2000:] for _, err in results]
        assert_every_unit_exactly_once(st.create_storage(url, out), n_trials=3, n_repeats=2,
                                       killed_pids={victim.pid})


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_then_resume_gives_the_uninterrupted_results(point, reference, tmp_path):
    out = tmp_path / "run"
    (code, err), = finish(start_workers(1, out, env={ENV: point}))
    assert code == -signal.SIGKILL, f"the worker was not killed at {point}: {err[-2000:]}"
    (code, err), = finish(start_workers(1, out))
    assert code == 0, err
    pd.testing.assert_frame_equal(sorted_results(out / "results.csv"), sorted_results(reference / "results.csv"))
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() == 2 * 2  # 2 methods x 2 slots, nothing counted twice
    assert not list(out.rglob(".*.tmp*"))  # the killed worker's temporary files were swept


def test_a_torn_journal_is_repaired_and_the_run_resumes(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    journal = out / "optuna.journal"
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - 25])  # the last record cut off mid-line
    proc = subprocess.run(worker_command(out), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [line for line in proc.stderr.splitlines() if "incomplete record" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert list(out.glob("optuna.journal.torn-*"))
    pd.testing.assert_frame_equal(sorted_results(out / "results.csv"), sorted_results(reference / "results.csv"))


def test_two_workers_print_each_stage_line_once_and_one_final_table(tmp_path):
    """Two workers on one journal: each '[... done]' line comes from one of them, the tables from one, and the
    other says in one line who finished the leaderboard and where its tables are."""
    out = tmp_path / "run"
    tiny = ("--methods", "contrastive", "--trials", "2", "--repeats", "2", "--set", "model.pretrained=false",
            "--set", "evaluation.verification_far=null", "--set", "training.iterations_per_epoch=4")
    procs = start_workers(2, out, *tiny)
    outputs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        outputs.append((p.returncode, stdout, stderr))
    assert [code for code, _, _ in outputs] == [0, 0], [err[-2000:] for _, _, err in outputs]
    both = [line for _, stdout, err in outputs for line in (stdout + err).splitlines()]
    for stage in ("[pretrained] builtin:", "[search done] builtin/contrastive:", "[repeats done] builtin/contrastive:"):
        assert sum(line.startswith(stage) for line in both) == 1, (stage, both)
    tables = [i for i, (_, stdout, _) in enumerate(outputs) if "| Contrastive" in stdout]
    assert len(tables) == 1, [stdout[-1000:] for _, stdout, _ in outputs]
    (other,) = {0, 1} - set(tables)
    finisher = procs[tables[0]]
    lines = [line for line in outputs[other][1].splitlines() if not line.startswith("[")]  # its stage lines
    assert lines == [f"leaderboard finished by another worker ({socket.gethostname()}:{finisher.pid}); "
                     f"tables in {out.resolve() / 'tables'}"]
    assert (out / "tables" / "builtin.md").is_file()
    assert_every_unit_exactly_once(st.create_storage(None, out), n_trials=2, n_repeats=2)
    # a re-run of the finished leaderboard is a worker of its own: it prints the tables and every stage line
    again = subprocess.run(worker_command(out, *tiny), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "| Contrastive" in again.stdout and "finished by another worker" not in again.stdout
    assert "[search done] builtin/contrastive:" in again.stdout
