"""Atomic file writes: a result file is either complete on disk or absent, never half-written.

Each write goes to a temporary file beside its target, named after the writing process
(``.<name>.<host>.<pid>.<random>.tmp``), and is renamed over the target when complete; several
workers writing the same file never share a temporary file. A process killed mid-write leaves its
temporary file behind: ``sweep_temporary_files`` removes those of processes that no longer exist.
Result files get the usual permissions (``0666`` less the umask), not ``mkstemp``'s ``0600``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable

_TMP = re.compile(r"^\..+\.(?P<host>[^.]+)\.(?P<pid>\d+)\.[^.]+\.tmp(\.\w+)?$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_path(path: Path, suffix: str = ".tmp") -> Path:
    """A new, empty temporary file beside ``path``, unique to this process."""
    host = socket.gethostname().replace(".", "_")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{host}.{os.getpid()}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic on POSIX file systems, so readers see the old file or the new one.
    ``suffix`` lets writers that choose a format by extension (matplotlib) see the right one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = temporary_path(path, suffix)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temporary_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files under ``folder`` left by dead processes of this host; return them."""
    host = socket.gethostname().replace(".", "_")
    removed = []
    for path in Path(folder).rglob(".*.tmp*"):
        m = _TMP.match(path.name)
        if m and m["host"] == host and int(m["pid"]) != os.getpid() and not pid_alive(int(m["pid"])):
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:
                pass
    return removed
