"""A PostgreSQL storage that stops answering: the real server stopped and started while two workers run.

An outage shorter than ``protocol.storage_wait`` is waited out (every storage call retried, the
heartbeat included): both workers exit 0 and every unit is done exactly once. A longer one ends each
worker with one line naming the storage (password masked) and exit status 4, and a re-run on this
host takes the unfinished units over at once and completes the leaderboard. The server is always
started again, whatever happens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmark.protocol import storage as st
from tests.protocol.workers import ROOT, assert_every_unit_exactly_once, finish, fresh_postgres_database

pytestmark = pytest.mark.slow
STORAGE_GONE = 4
#: A tiny leaderboard (frozen regime: units of a few seconds), 2 search slots and 2 repeats, 5 units in all.
TINY = """\
name: outage
seed: 0
device: cpu
methods: [contrastive]
datasets:
  - name: builtin
    options: {num_classes: 8, images_per_class: 4}
model: {trunk: small_cnn, embedding_dim: 8, pretrained: true, pretrain_epochs: 1}
frozen: {cut: after_last, grid: 2, views: 1}
training: {regime: frozen, threads: 1, batch_size: 4, m_per_class: 2, iterations_per_epoch: 20, max_epochs: 2,
           val_interval: 1, patience: 2}
protocol: {n_folds: 2, n_trials: 2, n_repeats: 2, n_startup_trials: 1, pruner: none, poll_interval: 0.3}
evaluation: {recall_at: [1], verification_far: null}
"""


def start(config: Path, out: Path, url: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run_benchmark.py"), "run", "--config", str(config),
                             "--out", str(out), "--storage", url, "--no-progress", *extra],
                            cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cluster() -> list[str]:
    """``pg_ctlcluster`` arguments of the local server (its newest version's ``main`` cluster)."""
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".") if p.isdigit()])
    return [versions[-1], "main"]


@contextmanager
def stopped_server():
    """The PostgreSQL server stopped; always started again on leaving."""
    try:
        args = cluster()
        stop = subprocess.run(["pg_ctlcluster", *args, "stop"], capture_output=True, text=True)
    except (OSError, IndexError) as exc:
        pytest.skip(f"cannot stop the local PostgreSQL server: {exc}")
    if stop.returncode != 0:
        pytest.skip(f"cannot stop the local PostgreSQL server: {stop.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["pg_ctlcluster", *args, "start"], capture_output=True, text=True, check=True)


def wait_for_running(url: str, n: int, procs: list[subprocess.Popen], timeout: float = 300) -> None:
    """Until ``n`` trials are RUNNING at once (every worker inside a unit)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(st.resolve_storage_url(url), poolclass=sqlalchemy.pool.NullPool)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a worker ended before the outage"
            try:
                with engine.connect() as conn:
                    running = conn.execute(sqlalchemy.text("SELECT count(*) FROM trials WHERE state = 'RUNNING'"))
                    if running.scalar() >= n:
                        return
            except sqlalchemy.exc.ProgrammingError:  # the tables do not exist yet
                pass
            time.sleep(0.2)
    finally:
        engine.dispose()
    pytest.fail(f"fewer than {n} trials were running at once within {timeout} s")


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "outage.yaml"
    path.write_text(TINY)
    return path


def test_two_workers_wait_out_a_45_s_outage(config, tmp_path):
    with fresh_postgres_database() as url:
        out = tmp_path / "run"
        procs = [start(config, out, url) for _ in range(2)]
        try:
            wait_for_running(url, 2, procs)
            with stopped_server():
                time.sleep(45)
            results = finish(procs)
        finally:
            for p in procs:
                p.kill()
        assert [code for code, _ in results] == [0, 0], [err[-3000:] for _, err in results]
        for _, err in results:
            assert "Traceback" not in err and "error:" not in err, err[-3000:]
        assert any("is not answering" in err for _, err in results)  # the outage was met, and waited out
        assert_every_unit_exactly_once(st.create_storage(url, out), n_trials=2, n_repeats=2)


def test_an_outage_past_storage_wait_ends_each_worker_in_one_line(config, tmp_path):
    import sqlalchemy

    with fresh_postgres_database() as url:
        out = tmp_path / "run"
        procs = [start(config, out, url, "--set", "protocol.storage_wait=5") for _ in range(2)]
        try:
            wait_for_running(url, 2, procs)
            with stopped_server():
                results = finish(procs, timeout=300)
        finally:
            for p in procs:
                p.kill()
        password = sqlalchemy.engine.make_url(url).password
        for code, err in results:
            assert code == STORAGE_GONE, err[-3000:]
            assert "Traceback" not in err, err[-3000:]
            errors = [line for line in err.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err[-3000:]
            assert errors[0].startswith(f"error: storage {st.mask_password(url)} did not answer for 5 s")
            assert f":{password}@" not in err
        rerun = start(config, out, url)  # on this host: the dead workers' trials are taken over at once
        (code, err), = finish([rerun], timeout=300)
        assert code == 0, err[-3000:]
        assert_every_unit_exactly_once(st.create_storage(url, out), n_trials=2, n_repeats=2,
                                       killed_pids={p.pid for p in procs})
