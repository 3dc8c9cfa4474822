"""A storage password never reaches a file, a log line, the database's metadata or a message.

The unit tests pin :mod:`benchmark.secrets`' masking; the end-to-end tests run the real CLI against
the real PostgreSQL server that CI starts, as a role with a password of its own, and grep every file
of the run folder, every line printed and every attribute the database holds — on a whole run and
on every error path that names the storage.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmark.secrets import MASK, RedactingFilter, has_secret, redact_text, redact_url
from tests.protocol.workers import postgres_admin_url

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text, expected", [
    ("postgresql://dml:pw@db:5432/x", f"postgresql://dml:{MASK}@db:5432/x"),
    ("postgresql+psycopg://dml:p@ss:w0rd@db/x", f"postgresql+psycopg://dml:{MASK}@db/x"),  # '@' in it
    ("mysql://:only@db/x", f"mysql://:{MASK}@db/x"),
    ("postgresql://db/x?user=u&password=pw&sslmode=require", f"postgresql://db/x?user=u&password={MASK}&sslmode=require"),
    ("host=db password=pw dbname=x", f"host=db password={MASK} dbname=x"),
    ("{'postgresql://u:pw@h/d': None}", f"{{'postgresql://u:{MASK}@h/d': None}}"),
    ("--storage=postgresql://u:pw@h/d --seed 1", f"--storage=postgresql://u:{MASK}@h/d --seed 1"),
])
def test_redact_text_masks_every_form_of_password(text, expected):
    assert redact_text(text) == expected
    assert has_secret(text) and not has_secret(expected)


@pytest.mark.parametrize("text", [
    "postgresql://dml@db:5432/x", "sqlite:///runs/a:b@c.db", "sqlite:///runs.db", "no url here", "",
    "https://example.org/a:b", "config key 'protocol.password_file'",
])
def test_redact_text_leaves_text_without_a_password_alone(text):
    assert redact_text(text) == text and not has_secret(text)


def test_redact_url_keeps_none_and_masks_a_url_without_scheme():
    assert redact_url(None) is None
    assert redact_url("dml:pw@db/x") == f"dml:{MASK}@db/x"
    assert redact_url("postgresql://dml:pw@db/x") == f"postgresql://dml:{MASK}@db/x"


def test_redacting_filter_masks_a_record_with_arguments():
    record = logging.LogRecord("benchmark", logging.INFO, __file__, 1, "connected to %s after %d s",
                               ("postgresql://u:pw@h/d", 3), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == f"connected to postgresql://u:{MASK}@h/d after 3 s"


# -- end to end, on the real server --------------------------------------------------------------

@contextmanager
def role_with_password():
    """A login role with a password of its own and a database it owns; yields (url, password)."""
    import sqlalchemy

    from benchmark.protocol.storage import resolve_storage_url

    admin = postgres_admin_url()
    tag = uuid.uuid4().hex[:10]
    role, password, database = f"dmlsecret_{tag}", f"Pw-{uuid.uuid4().hex}", f"dmlsecret_{tag}"
    engine = sqlalchemy.create_engine(resolve_storage_url(admin), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        conn.execute(sqlalchemy.text(f"GRANT {role} TO CURRENT_USER"))  # to make it a database's owner
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{database}" OWNER {role}'))
    host = sqlalchemy.engine.make_url(admin)
    url = f"postgresql://{role}:{password}@{host.host}:{host.port or 5432}/{database}"
    try:
        yield url, password
    finally:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(sqlalchemy.text(f"DROP ROLE IF EXISTS {role}"))
        engine.dispose()


def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(ROOT / "run_benchmark.py"), *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def files_holding(folder: Path, secret: str) -> list[str]:
    """Every file under ``folder`` whose bytes contain ``secret``."""
    needle = secret.encode()
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def database_strings(url: str) -> str:
    """Every row of every table the storage holds (studies, trials, attributes, params), as text."""
    import sqlalchemy

    from benchmark.protocol.storage import resolve_storage_url

    engine = sqlalchemy.create_engine(resolve_storage_url(url))
    parts = []
    with engine.connect() as conn:
        tables = conn.execute(sqlalchemy.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")).scalars().all()
        for table in tables:
            parts += [repr(tuple(row)) for row in conn.execute(sqlalchemy.text(f'SELECT * FROM "{table}"'))]
    engine.dispose()
    return "\n".join(parts)


SMALL = ("--methods", "contrastive", "--trials", "1", "--repeats", "2", "--no-progress")


@pytest.mark.slow
def test_a_postgres_run_leaves_the_password_nowhere(tmp_path):
    with role_with_password() as (url, password):
        out = tmp_path / "run"
        proc = cli("run", "--preset", "smoke", "--out", str(out), "--storage", url, *SMALL, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert password not in proc.stdout + proc.stderr
        assert (out / "results.csv").is_file() and (out / "run.log").is_file()
        assert files_holding(out, password) == []
        resolved = (out / "config.resolved.yaml").read_text()
        assert f":{MASK}@" in resolved  # the storage is recorded, masked
        argv = json.loads((out / "provenance.json").read_text())["invocations"][0]["argv"]
        assert any(f":{MASK}@" in a for a in argv)
        stored = database_strings(url)
        assert "contrastive" in stored and password not in stored

        # a second worker joining the finished run, with the same URL: same masked record, no change refused
        again = cli("run", "--preset", "smoke", "--out", str(out), "--storage", url, *SMALL, cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        assert password not in again.stdout + again.stderr
        # another config on the same storage and folder: refused, naming the storage without its password
        changed = cli("run", "--preset", "smoke", "--out", str(out), "--storage", url, *SMALL, "--seed", "7",
                      cwd=tmp_path)
        assert changed.returncode == 2 and "different config" in changed.stderr
        assert password not in changed.stdout + changed.stderr
        # the report stage reads the run folder only
        report = cli("report", str(out), "--no-plots", cwd=tmp_path)
        assert report.returncode == 0, report.stderr[-3000:]
        assert files_holding(out, password) == [] and password not in report.stdout + report.stderr


def test_every_error_path_that_names_the_storage_masks_its_password(tmp_path):
    """Refusals before anything is written: unreachable server, wrong password, unknown database or
    dialect, a value YAML would read as a mapping, the --set route; none prints the password."""
    password = f"Pw-{uuid.uuid4().hex}"
    bad = {
        "unreachable": f"postgresql://dml:{password}@127.0.0.1:1/dmlbench",
        "unknown dialect": f"nosuchdb://dml:{password}@127.0.0.1/x",
        "a mapping to YAML": f"{{postgresql://dml:{password}@127.0.0.1:1/x: 1}}",
        "query password": f"postgresql://127.0.0.1:1/x?user=dml&password={password}",
        "not a URL": f"dml:{password}@127.0.0.1",
    }
    for what, url in bad.items():
        for route in (("--storage", url), ("--set", f"protocol.storage={url}")):
            out = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
            proc = cli("run", "--preset", "smoke", "--out", str(out), *route, *SMALL, cwd=tmp_path)
            assert proc.returncode == 2, (what, route[0], proc.stderr[-2000:])
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (what, route[0], proc.stderr[-2000:])
            assert password not in proc.stdout + proc.stderr, (what, route[0], proc.stderr)
            assert not out.exists(), (what, route[0])


def test_a_wrong_password_on_the_real_server_is_refused_without_printing_it(tmp_path):
    with role_with_password() as (url, password):
        wrong_password = f"Wrong-{uuid.uuid4().hex}"
        wrong = url.replace(password, wrong_password)
        out = tmp_path / "run"
        proc = cli("run", "--preset", "smoke", "--out", str(out), "--storage", wrong, *SMALL, cwd=tmp_path)
        assert proc.returncode == 2 and "cannot connect" in proc.stderr, proc.stderr[-2000:]
        assert wrong_password not in proc.stdout + proc.stderr and password not in proc.stderr
        assert f":{MASK}@" in proc.stderr
        assert not out.exists()


def test_the_password_may_stay_out_of_the_url():
    """PostgreSQL's own PGPASSWORD (or ~/.pgpass) works: the URL then holds no secret at all."""
    with role_with_password() as (url, password):
        bare = url.replace(f":{password}@", "@")
        env_before = os.environ.get("PGPASSWORD")
        os.environ["PGPASSWORD"] = password
        try:
            from benchmark.protocol.storage_check import check_storage_url

            check_storage_url(bare)  # connects with the environment's password
        finally:
            if env_before is None:
                os.environ.pop("PGPASSWORD")
            else:
                os.environ["PGPASSWORD"] = env_before
