"""A PostgreSQL storage that stops answering (``benchmark.protocol.storage_retry``).

Fast: the storage reaches the real server through a TCP relay that the test cuts and restores (every
connection dropped, new ones refused): a call waits for the link, and past ``wait`` raises one masked
line, after which the storage answers again once the link is back.

Slow: the real server stopped and started while two workers run. An outage shorter than
``protocol.storage_wait`` is waited out (every storage call retried, the heartbeat included): both
workers exit 0 and every unit is done exactly once. A longer one ends each worker with one line
naming the storage (password masked) and exit status 4, and a re-run on this host takes the
unfinished units over at once and completes the leaderboard. The server is always
started again, whatever happens.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from benchmark.errors import StorageUnavailableError
from benchmark.protocol import storage as st
from benchmark.secrets import redact_url
from tests.protocol.workers import ROOT, assert_every_unit_exactly_once, finish, fresh_postgres_database

STORAGE_GONE = 4
#: A small leaderboard (frozen regime), 2 search slots and 2 repeats, 5 units in all, each unit long enough (400
#: iterations a fold) that on a fast, quiet machine one worker cannot finish them all before the other starts;
#: search slots run concurrently, so that both workers are inside a unit when the server stops.
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
training: {regime: frozen, threads: 1, batch_size: 4, m_per_class: 2, iterations_per_epoch: 200, max_epochs: 2,
           val_interval: 1, patience: 2}
protocol: {n_folds: 2, n_trials: 2, n_repeats: 2, n_startup_trials: 1, pruner: none, poll_interval: 0.3,
           search_order: concurrent}
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


class Link:
    """A TCP relay to the database server that can be cut (connections dropped, new ones closed at once)."""

    def __init__(self, url: str) -> None:
        import sqlalchemy

        self.target = sqlalchemy.engine.make_url(url)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = self.target.set(host="127.0.0.1", port=self.listener.getsockname()[1]) \
            .render_as_string(hide_password=False)
        self.up, self.sockets, self.lock = True, [], threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection((self.target.host, self.target.port or 5432))
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.sockets = []

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_a_call_waits_for_the_link_and_past_the_wait_gives_up_in_one_masked_line(tmp_path, capsys):
    import sqlalchemy

    with fresh_postgres_database() as url:
        link = Link(url)
        try:
            study = st.get_study(st.create_storage(link.url, tmp_path, wait=60), "s")
            trial = study.ask()
            link.cut()
            threading.Timer(2.0, link.restore).start()
            study.tell(trial, 1.0)  # retried until the link is back
            assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]
            err = capsys.readouterr().err.splitlines()
            assert len(err) == 2 and "is not answering" in err[0] and "answers again" in err[1], err

            impatient = optuna.load_study(study_name="s", storage=st.create_storage(link.url, tmp_path, wait=1))
            link.cut()
            with pytest.raises(StorageUnavailableError) as caught:
                impatient.get_trials()
            message = str(caught.value)
            assert message.startswith(f"storage {redact_url(link.url)} did not answer for 1 s")
            assert len(message.splitlines()) == 1
            assert f":{sqlalchemy.engine.make_url(url).password}@" not in message + capsys.readouterr().err
            with pytest.raises(StorageUnavailableError):  # gave up: one try, no second wait
                impatient.get_trials()
            link.restore()
            assert len(impatient.get_trials()) == 1  # and it answers again
        finally:
            link.close()


@pytest.mark.slow
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


@pytest.mark.slow
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
            assert errors[0].startswith(f"error: storage {redact_url(url)} did not answer for 5 s")
            assert f":{password}@" not in err
        rerun = start(config, out, url)  # on this host: the dead workers' trials are taken over at once
        (code, err), = finish([rerun], timeout=300)
        assert code == 0, err[-3000:]
        assert_every_unit_exactly_once(st.create_storage(url, out), n_trials=2, n_repeats=2,
                                       killed_pids={p.pid for p in procs})
