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


def test_storage_file_gives_its_first_line(tmp_path):
    from benchmark.protocol.storage_check import read_storage_file

    path = tmp_path / "url"
    path.write_text("\n  postgresql://u:pw@host/db  \nignored\n")
    path.chmod(0o600)
    assert read_storage_file(path) == "postgresql://u:pw@host/db"


@pytest.mark.parametrize("mode, text, message", [
    (0o644, "postgresql://u:pw@host/db\n", "can be read by other users \\(mode 644\\)"),
    (0o640, "postgresql://u:pw@host/db\n", "mode 640"),
    (0o600, "\n \n", "is empty"),
    (None, "", "cannot be read"),
])
def test_storage_file_refusals(tmp_path, mode, text, message):
    from benchmark.protocol.storage_check import read_storage_file

    path = tmp_path / "url"
    if mode is not None:
        path.write_text(text)
        path.chmod(mode)
    with pytest.raises(ConfigError, match=message) as exc:
        read_storage_file(path)
    assert "pw" not in str(exc.value)


def test_run_with_a_readable_storage_file_is_refused_before_anything_is_written(tmp_path, capsys):
    from benchmark.cli import main

    path = tmp_path / "url"
    path.write_text("postgresql://u:pw@127.0.0.1:1/db\n")
    path.chmod(0o644)
    code = main(["run", "--preset", "smoke", "--out", str(tmp_path / "run"), "--storage-file", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --storage-file ") and "chmod 600" in err, err
    assert not (tmp_path / "run").exists()
