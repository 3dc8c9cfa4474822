"""Checking a storage URL (``--storage`` / ``protocol.storage``) before anything is written.

``check_storage_url`` parses the URL, loads its SQLAlchemy dialect, imports the database driver
and opens one short connection (SQLite: checks the file's folder instead, since connecting would
create the file). Each failure is a ``ConfigError`` naming the URL with its password masked (``benchmark.secrets``).
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.errors import ConfigError
from benchmark.protocol.storage import KEY, application_name, resolve_storage_url
from benchmark.secrets import redact_text, redact_url

#: Seconds a connection attempt may take before the server is called unreachable.
CONNECT_TIMEOUT = 5
#: Driver module -> what to install for it.
DRIVER_PACKAGES = {
    "psycopg2": 'pip install "dml-bench[postgres]" (psycopg 3), or psycopg2-binary',
    "psycopg": 'pip install "dml-bench[postgres]" (psycopg 3)',
    "pymysql": "pip install pymysql",
    "MySQLdb": "pip install mysqlclient",
    "pg8000": "pip install pg8000",
    "asyncpg": "pip install asyncpg",
}
#: Dialects whose drivers take ``connect_timeout`` (seconds).
_TIMEOUT_DIALECTS = ("postgresql", "mysql", "mariadb")
def check_storage_url(url: str, *, timeout: int = CONNECT_TIMEOUT) -> None:
    """Refuse a storage URL that is malformed, of an unknown database, whose driver is not
    installed, or whose server cannot be reached within ``timeout`` seconds."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = redact_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"{KEY}: {shown!r} is not a storage URL (expected dialect[+driver]://user:password@host"
                          f"[:port]/database, e.g. postgresql://user:password@dbhost/dmlbench)") from None
    if parsed.drivername.partition("+")[0] in ("postgresql", "postgres"):
        parsed = make_url(resolve_storage_url(url))  # the installed driver, as the storage will use it
    shown = redact_text(parsed.render_as_string(hide_password=True))
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise ConfigError(f"{KEY}: {shown!r} names an unknown database {parsed.drivername!r} (expected "
                          f"postgresql, mysql or sqlite, optionally with +driver)") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = exc.name or parsed.drivername
        hint = DRIVER_PACKAGES.get(module.split(".")[0], f"install the Python module {module}")
        raise ConfigError(f"{KEY}: the database driver for {shown!r} is not installed (module {module!r}): "
                          f"{hint}") from None
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite(parsed.database, shown)
        return
    _check_connection(parsed, shown, timeout)


def _check_sqlite(database: str | None, shown: str) -> None:
    if not database or database == ":memory:":
        raise ConfigError(f"{KEY}: {shown!r} is an in-memory SQLite database, which no other worker and no "
                          f"later run can see (give a file, e.g. sqlite:///runs.db)")
    path = Path(database).expanduser()
    if path.exists():
        if not path.is_file():
            raise ConfigError(f"{KEY}: {shown!r}: {path} is not a file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(f"{KEY}: {shown!r}: {path} is not readable and writable")
        return
    parent = path.absolute().parent
    if not parent.is_dir():
        raise ConfigError(f"{KEY}: {shown!r}: the folder {parent} of the database file does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{KEY}: {shown!r}: the folder {parent} of the database file is not writable")


def _check_connection(parsed, shown: str, timeout: int) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, DBAPIError

    connect_args = {"connect_timeout": timeout} if parsed.get_backend_name() in _TIMEOUT_DIALECTS else {}
    if parsed.get_backend_name() == "postgresql":
        connect_args["application_name"] = application_name()
    try:
        engine = create_engine(parsed, connect_args=connect_args)
    except (ArgumentError, TypeError) as exc:
        raise ConfigError(f"{KEY}: {shown!r} has options SQLAlchemy does not accept ({exc})") from None
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        text = str(exc.orig or exc).strip()
        reason = redact_text(text.splitlines()[0]) if text else type(exc).__name__
        raise ConfigError(f"{KEY}: cannot connect to {shown!r} (timeout {timeout} s: {reason})") from None
    finally:
        engine.dispose()


def read_storage_file(path: str | os.PathLike) -> str:
    """The storage URL kept in a file (``--storage-file``), so that its password is in no command line or
    script. The file must be readable by its owner only (mode 600, as ``~/.pgpass`` must be); its first
    non-empty line is the URL."""
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"--storage-file {path}: cannot be read ({reason}); expected a file holding the storage "
                          f"URL, mode 600") from None
    if mode & 0o077:
        raise ConfigError(f"--storage-file {path} can be read by other users (mode {mode & 0o777:o}); it holds a "
                          f"password: chmod 600 {path}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ConfigError(f"--storage-file {path} is empty (expected the storage URL on its first line)")
    return lines[0]
