"""Real workers, real signals: a unit stopped by SIGTERM / SIGUSR1 / Ctrl-C or killed by SIGKILL resumes from its
checkpoint, a released unit is taken up by a live worker at once, and a worker's database connections stay bounded.

The worker freezes itself (SIGSTOP, ``DML_BENCH_STOP_AT``) right after writing a training state in the second
fold of its first unit (more than half of the unit trained); the test then sends the real signal and SIGCONT,
so the signal lands at a known point without guessing times. The resumed run's ``results.csv`` must equal an
uninterrupted run's.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.protocol import storage as st
from benchmark.protocol.faults import ENV, STOP_ENV
from benchmark.protocol.unit_checkpoint import CHECKPOINT_DIR, TRAINING_FILE
from benchmark.protocol.units import RELEASED
from tests.protocol.workers import fresh_postgres_database, finish, sorted_results, start_workers

pytestmark = pytest.mark.slow
#: The smoke leaderboard cut to one method, one search trial and one repeat (3 units: Pretrained, search slot 0,
#: repeat 0), each unit 2 folds of 2 epochs. A training state is saved after epoch 1 of each fold, so the second
#: one saved is fold 1's (fold 0 of 2 finished: the unit is three quarters trained).
LONGER = ("--methods", "contrastive", "--trials", "1", "--repeats", "1", "--set", "evaluation.verification_far=null")
SECOND_STATE = "unit.state_saved#2"
EXIT = {signal.SIGTERM: 143, signal.SIGUSR1: 138, signal.SIGINT: 130}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    (code, err), = finish(start_workers(1, out, *LONGER))
    assert code == 0, err[-3000:]
    return out


def wait_until_stopped(proc) -> None:
    """Wait for ``proc`` to freeze itself at its stop point (state T in /proc), or fail if it exits first."""
    stat = Path(f"/proc/{proc.pid}/stat")
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the worker exited ({proc.returncode}) before its stop point: {proc.stderr.read()[-3000:]}")
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "T":
            return
        time.sleep(0.05)


def signal_stopped(proc, sig) -> None:
    proc.send_signal(sig)  # delivered when the process runs again
    proc.send_signal(signal.SIGCONT)


def unit_folders(out: Path) -> list[Path]:
    return [p for p in (out / CHECKPOINT_DIR).glob("*/*") if p.is_dir()]


def trials(out: Path, url=None):
    import optuna

    storage = st.create_storage(url, out)
    found = []
    for summary in optuna.get_all_study_summaries(storage):
        found += optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
    return found


def last_line(err: str) -> str:
    return [line for line in err.splitlines() if line.strip()][-1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_checkpoints_releases_and_a_rerun_resumes(sig, reference, tmp_path):
    out = tmp_path / "run"
    worker, = start_workers(1, out, *LONGER, env={STOP_ENV: SECOND_STATE})
    wait_until_stopped(worker)
    folder, = unit_folders(out)
    assert (folder / "fold-0.pt").is_file() and (folder / TRAINING_FILE).is_file()  # over half the unit trained
    signal_stopped(worker, sig)
    (code, err), = finish([worker])
    assert code == EXIT[sig], err[-3000:]
    assert last_line(err).startswith(f"stopped ({sig.name})" if sig != signal.SIGINT else "interrupted"), err[-2000:]
    assert "Traceback" not in err
    released = [t for t in trials(out) if RELEASED in t.user_attrs]
    assert len(released) == 1 and released[0].user_attrs[RELEASED] == sig.name
    assert released[0].state.name == "FAIL"
    # the stop wrote the state it stopped in: fold 1, at the start of its second epoch (taken at the next iteration)
    state = torch.load(folder / TRAINING_FILE, weights_only=False)
    assert (state["fold"], state["epoch"], state["step"]) == (1, 2, 0)
    if sig != signal.SIGTERM:
        return
    (code, err), = finish(start_workers(1, out, *LONGER))
    assert code == 0, err[-3000:]
    log = (out / "run.log").read_text()
    assert "fold 0: finished in an earlier attempt" in log and "fold 1: resumed from its checkpoint at epoch 2" in log
    pd.testing.assert_frame_equal(sorted_results(out / "results.csv"), sorted_results(reference / "results.csv"))
    assert not (out / CHECKPOINT_DIR).exists()  # every unit recorded: no checkpoint left


def test_sigkill_then_another_worker_resumes_the_unit(reference, tmp_path):
    out = tmp_path / "run"
    (code, err), = finish(start_workers(1, out, *LONGER, env={ENV: SECOND_STATE}))
    assert code == -signal.SIGKILL, err[-3000:]
    folder, = unit_folders(out)
    assert (folder / "fold-0.pt").is_file() and (folder / TRAINING_FILE).is_file()
    (code, err), = finish(start_workers(1, out, *LONGER))
    assert code == 0, err[-3000:]
    log = (out / "run.log").read_text()
    assert "taken over (worker gone)" in log and "fold 1: resumed from its checkpoint at epoch 1" in log
    pd.testing.assert_frame_equal(sorted_results(out / "results.csv"), sorted_results(reference / "results.csv"))
    assert not (out / CHECKPOINT_DIR).exists()


def test_sigterm_releases_the_unit_to_a_live_worker_at_once(reference, tmp_path):
    """Two live workers, a grace period of 10 minutes: the unit of the worker stopped by SIGTERM is taken up by the
    other one at once (a unit left RUNNING would hold it for the grace period, past the test's timeout)."""
    out = tmp_path / "run"
    args = (*LONGER, "--set", "protocol.grace_period=600")
    first, = start_workers(1, out, *args, env={STOP_ENV: SECOND_STATE})
    wait_until_stopped(first)
    second, = start_workers(1, out, *args)
    signal_stopped(first, signal.SIGTERM)
    (code1, err1), (code2, err2) = finish([first, second], timeout=400)
    assert code1 == 143 and last_line(err1).startswith("stopped (SIGTERM)"), err1[-3000:]
    assert code2 == 0, err2[-3000:]
    everything = trials(out)
    released, = [t for t in everything if RELEASED in t.user_attrs]
    assert released.user_attrs[st.WORKER_ATTR].endswith(f":{first.pid}")
    redone = [t for t in everything if t.user_attrs.get("retry_of") == released.number]
    assert len(redone) == 1 and redone[0].state.name == "COMPLETE"
    assert redone[0].user_attrs[st.WORKER_ATTR].endswith(f":{second.pid}")
    assert "fold 1: resumed from its checkpoint at epoch 2" in (out / "run.log").read_text()
    pd.testing.assert_frame_equal(sorted_results(out / "results.csv"), sorted_results(reference / "results.csv"))


def test_three_workers_hold_at_most_max_connections_each(tmp_path):
    """pg_stat_activity sampled while three workers run the smoke leaderboard on PostgreSQL: per worker (the
    connections' application_name carries its host:pid) never more than ``storage.MAX_CONNECTIONS``."""
    import sqlalchemy

    with fresh_postgres_database() as url:
        engine = sqlalchemy.create_engine(st.resolve_storage_url(url), poolclass=sqlalchemy.pool.NullPool)
        most: dict[str, int] = {}
        samples = []
        done = threading.Event()

        def sample():
            query = sqlalchemy.text("SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = "
                                    "current_database() AND application_name LIKE 'dml-bench %' "
                                    "GROUP BY application_name")
            with engine.connect() as conn:
                while not done.is_set():
                    rows = conn.execute(query).all()
                    conn.commit()  # (pg_stat_activity is a snapshot per transaction: a new one per sample)
                    samples.append(sum(n for _, n in rows))
                    for name, n in rows:
                        most[name] = max(most.get(name, 0), n)
                    time.sleep(0.01)

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        try:
            results = finish(start_workers(3, tmp_path / "run", "--storage", url, "--trials", "1", "--repeats", "2",
                                           "--set", "evaluation.verification_far=null"))
        finally:
            done.set()
            watcher.join()
            engine.dispose()
        assert [code for code, _ in results] == [0, 0, 0], [err[-2000:] for _, err in results]
        assert most, "no connection of a worker was ever seen"
        assert max(most.values()) <= st.MAX_CONNECTIONS, most
        assert max(samples) <= 3 * st.MAX_CONNECTIONS, max(samples)
