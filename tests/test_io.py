"""Atomic writes: usual permissions, per-process temporary files, and sweeping those of dead processes."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

from benchmark.io import atomic_write_text, sweep_temporary_files, temporary_path


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
