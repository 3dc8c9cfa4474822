"""A real small file system for the full-disk tests: a ``tmpfs`` of a given size, mounted for one test.

Mounting needs root (CI runs as root); elsewhere the test is skipped, saying why.
"""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PAGE = 4096


@contextmanager
def small_fs(folder: Path, size: int) -> Iterator[Path]:
    """``folder`` (created) as a ``tmpfs`` of ``size`` bytes (whole pages), unmounted afterwards."""
    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the full-disk test: {mounted.stderr.strip() or 'mount failed'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize(folder: Path, size: int) -> None:
    """Give the mounted ``tmpfs`` at ``folder`` a new size (what freeing space does)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` with one file, leaving ``leave`` bytes free (rounded to pages)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while f.write(b"\0" * PAGE):
                pass
        except OSError:
            pass
    # the last partial write may have taken a page: give back what is to be left free
    size = filler.stat().st_size
    with open(filler, "r+b") as f:
        f.truncate(max(0, (size // PAGE) * PAGE - leave))
    return filler
