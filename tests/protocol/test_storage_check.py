"""The storage URL check: malformed URLs, unknown databases, missing drivers and unreachable servers are
refused with the password masked; a usable SQLite file passes without being created."""

from __future__ import annotations

import pytest

from benchmark.errors import ConfigError
from benchmark.protocol.storage_check import check_storage_url
from benchmark.secrets import redact_text


def test_redact_text_masks_storage_passwords():
    assert redact_text("postgresql://me:pa:ss@host/db") == "postgresql://me:***@host/db"
    assert redact_text("postgresql://host/db") == "postgresql://host/db"


def test_sqlite_file_passes_and_is_not_created(tmp_path):
    check_storage_url(f"sqlite:///{tmp_path}/runs.db")
    assert not (tmp_path / "runs.db").exists()


@pytest.mark.parametrize("url, message", [
    ("no url at all", "not a storage URL"),
    ("postgresql://u:pw@host:port/db", "not a storage URL"),
    ("nosuchdb://u:pw@host/db", "unknown database 'nosuchdb'"),
    ("mysql+pymysqlx://u:pw@host/db", "unknown database"),
    ("sqlite://", "in-memory"),
    ("sqlite:////nonexistent-folder-x/runs.db", "does not exist"),
    ("postgresql://u:pw@127.0.0.1:1/db", "u:\\*\\*\\*@127.0.0.1:1/db"),  # refused, or its driver is missing
])
def test_bad_storage_urls(url, message):
    with pytest.raises(ConfigError, match=message) as exc:
        check_storage_url(url, timeout=2)
    assert ":pw@" not in str(exc.value)
    assert "protocol.storage" in str(exc.value)


def test_missing_driver_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_psycopg2(name, *args, **kwargs):
        if name.split(".")[0] == "psycopg2":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg2)
    with pytest.raises(ConfigError, match=r'not installed \(module .psycopg2.\): pip install "dml-bench\[postgres\]"'):
        check_storage_url("postgresql+psycopg2://u:pw@localhost/db")
