"""Helpers for the process-level tests: worker subprocesses of the real CLI, and what the storage holds after them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from benchmark.protocol import storage as st

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_ENV = "DML_BENCH_TEST_POSTGRES"


def worker_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "run_benchmark.py"), "run", "--preset", "smoke", "--out", str(out),
            "--no-progress", "--set", "protocol.poll_interval=0.3", *extra]


def start_workers(n: int, out: Path, *extra: str, env: dict | None = None) -> list[subprocess.Popen]:
    """``n`` worker processes of one leaderboard, started at the same moment."""
    environment = {**os.environ, **(env or {})}
    return [subprocess.Popen(worker_command(out, *extra), cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(n)]


def sorted_results(path) -> pd.DataFrame:
    """A ``results.csv`` in a fixed row order (workers record units in any order)."""
    df = pd.read_csv(path)
    return df.sort_values(list(df.columns[:-1])).reset_index(drop=True)


def finish(procs: list[subprocess.Popen], timeout: float = 600) -> list[tuple[int, str]]:
    """Wait for every worker; (exit code, stderr) of each."""
    out = []
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        out.append((p.returncode, err))
    return out


def unit_census(storage) -> dict[str, dict]:
    """For every study: per unit, the trials that did work (not dropped before starting), and their states."""
    census = {}
    for summary in optuna.get_all_study_summaries(storage):
        name = summary.study_name
        if name.startswith("__"):
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        if name.endswith("::search"):
            from benchmark.protocol.units import SearchStage

            keys = SearchStage.slots(trials)
        else:
            keys = {t.number: t.user_attrs["unit"] for t in trials if "unit" in t.user_attrs}
        units: dict[int, list] = {}
        for t in trials:
            if "dropped" in t.user_attrs or t.number not in keys or t.state == TrialState.WAITING:
                continue
            units.setdefault(keys[t.number], []).append(t)
        census[name] = units
    return census


def assert_every_unit_exactly_once(storage, *, n_trials: int, n_repeats: int, killed_pids=()) -> None:
    """Each unit was done by exactly one trial; a second attempt only where a killed worker held the first."""
    census = unit_census(storage)
    assert census, "no studies in the storage"
    for name, units in census.items():
        expected = n_trials if name.endswith("::search") else n_repeats if name.endswith("::repeats") else 1
        assert sorted(units) == list(range(expected)), (name, sorted(units))
        for unit, trials in units.items():
            complete = [t for t in trials if t.state == TrialState.COMPLETE]
            assert len(complete) == 1, (name, unit, [(t.number, t.state.name) for t in trials])
            for t in trials:
                if t.state != TrialState.COMPLETE:
                    pid = int(str(t.user_attrs.get(st.WORKER_ATTR, ":0")).rsplit(":", 1)[1])
                    assert pid in killed_pids, (name, unit, t.number, t.state.name, t.user_attrs.get(st.WORKER_ATTR))
        if name.endswith("::search"):
            params = [tuple(sorted(ts[0].params.items())) for ts in units.values()]
            assert len(set(params)) == len(params), (name, params)  # never the same configuration twice


def postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set in CI: .ci/run must start PostgreSQL and set it")
        pytest.skip(f"no PostgreSQL server ({POSTGRES_ENV} unset)")
    return url


@contextmanager
def fresh_postgres_database():
    """A new, empty database on the test server (dropped afterwards); yields its URL."""
    import sqlalchemy

    admin = postgres_admin_url()
    name = f"dmltest_{uuid.uuid4().hex[:12]}"
    # no pooled connection: a test may restart the server in between (``test_storage_retry``)
    engine = sqlalchemy.create_engine(st.resolve_storage_url(admin), isolation_level="AUTOCOMMIT",
                                      poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = sqlalchemy.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
