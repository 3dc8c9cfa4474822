"""Atomic writes: usual permissions, per-process temporary files, sweeping those of dead processes, and a full
disk (a real small tmpfs): ``DiskFullError`` with the old file intact, and cache files skipped with one warning."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest
import torch

from benchmark import io
from benchmark.errors import DiskFullError
from benchmark.io import atomic_write, atomic_write_text, sweep_temporary_files, temporary_path, write_cache_file
from tests.tmpfs import PAGE, fill, small_fs


def test_result_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "results.csv", "a,b\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == "a,b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_temporary_files_name_their_process_and_only_dead_ones_are_swept(tmp_path):
    mine = temporary_path(tmp_path / "results.csv")
    assert f".{os.getpid()}." in mine.name
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    host = socket.gethostname().replace(".", "_")
    (tmp_path / "plots").mkdir()
    dead = tmp_path / "plots" / f".builtin_metrics.png.{host}.{proc.pid}.abc123.tmp.png"
    dead.write_bytes(b"half a plot")
    elsewhere = tmp_path / f".results.csv.otherhost.{proc.pid}.abc123.tmp"
    elsewhere.write_text("another machine's file: its process cannot be checked from here")
    assert sweep_temporary_files(tmp_path) == [dead]
    assert mine.exists() and elsewhere.exists() and not dead.exists()


@pytest.mark.parametrize("writer", ["text", "torch.save"])
def test_a_full_disk_is_disk_full_error_and_the_old_file_stays(writer, tmp_path):
    """``torch.save`` hides the errno (a RuntimeError): the nearly full file system tells instead."""
    with small_fs(tmp_path / "fs", 8 * PAGE) as fs:
        target = fs / "results.csv"
        atomic_write_text(target, "old\n")
        fill(fs)
        big = "x" * (4 * PAGE)
        with pytest.raises(DiskFullError) as caught:
            if writer == "text":
                atomic_write_text(target, big)
            else:
                atomic_write(target, lambda p: torch.save({"values": torch.zeros(4 * PAGE)}, p))
        assert str(caught.value) == (f"no space left on device while writing {target}; free space and re-run "
                                     f"the same command to resume")
        assert target.read_text() == "old\n"
        assert sorted(p.name for p in fs.iterdir()) == ["filler", "results.csv"]


def test_other_write_errors_are_not_called_a_full_disk(tmp_path):
    def fail(path):
        raise ValueError("not a disk problem")

    with pytest.raises(ValueError, match="not a disk problem"):
        atomic_write(tmp_path / "x.csv", fail)
    assert not list(tmp_path.iterdir())


def test_a_cache_file_that_cannot_be_written_is_one_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(io, "_cache_warned", False)
    with small_fs(tmp_path / "cache", 4 * PAGE) as cache:
        fill(cache)
        for name in ("a.pt", "b.pt"):
            assert write_cache_file(cache / "frozen" / name,
                                    lambda p: torch.save({"values": torch.zeros(4 * PAGE)}, p)) is False
        assert sorted(p.name for p in cache.rglob("*") if p.is_file()) == ["filler"]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: cannot write the cache file {cache / 'frozen' / 'a.pt'} "
                                                   f"(no space left on device)")
    assert write_cache_file(tmp_path / "c.pt", lambda p: p.write_bytes(b"ok")) is True
    assert (tmp_path / "c.pt").read_bytes() == b"ok"
