"""Atomic file writes: a result file is either complete on disk or absent, never half-written.

Each write goes to a temporary file beside its target, named after the writing process
(``.<name>.<host>.<pid>.<random>.tmp``), and is renamed over the target when complete; several
workers writing the same file never share a temporary file. A process killed mid-write leaves its
temporary file behind: ``sweep_temporary_files`` removes those of processes that no longer exist.
Result files get the usual permissions (``0666`` less the umask), not ``mkstemp``'s ``0600``.

A write that finds no space left on its device (``ENOSPC``, or ``EDQUOT`` for a spent quota) raises
``DiskFullError`` naming the file, after removing its temporary file: the previous version of the
target stays as it was. So does a writer that hides the errno (``torch.save`` raises a
``RuntimeError``) when its file system has less than ``FULL_BELOW`` bytes left after the failure.
``write_cache_file`` is ``atomic_write`` for caches: any failure there is one warning line, and the
caller carries on without caching.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from benchmark.errors import DiskFullError

log = logging.getLogger(__name__)

#: The errno values of a full device and of a spent disk quota.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
#: A writer's failure that is not an ``OSError`` counts as a full disk when less than this is left.
FULL_BELOW = 1 << 20
_cache_warned = False
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


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc``, or an exception it was raised from, is an ``OSError`` for a full device or quota."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFullError) or (isinstance(current, OSError)
                                                  and current.errno in DISK_FULL_ERRNOS):
            return True
        current = current.__cause__ or current.__context__
    return False


def _nearly_full(folder: Path) -> bool:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < FULL_BELOW


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic on POSIX file systems, so readers see the old file or the new one.
    ``suffix`` lets writers that choose a format by extension (matplotlib) see the right one.
    ``DiskFullError`` when the device is full (see the module docstring).
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = temporary_path(path, suffix)
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except Exception as exc:
        # measured before the temporary file is removed: a writer that hid the errno filled the device
        hidden = tmp_path is not None and not isinstance(exc, OSError) and _nearly_full(path.parent)
        if is_disk_full(exc) or hidden:
            raise DiskFullError(path) from None
        raise
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()
    return path


def write_cache_file(path: str | os.PathLike, write: Callable[[Path], None]) -> bool:
    """``atomic_write`` for a cache file; False when it could not be written, whatever the writer raised.

    The first failure of the process prints one warning line (the run carries on uncached); later
    ones are only logged. Nothing partial is left (the temporary file is removed).
    """
    global _cache_warned
    try:
        atomic_write(path, write)
        return True
    except Exception as exc:  # noqa: BLE001 - a cache is optional: no writer's failure may end the run
        reason = "no space left on device" if isinstance(exc, DiskFullError) else \
            (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        message = f"cannot write the cache file {path} ({reason}); carrying on without caching"
        log.warning(message)
        if not _cache_warned:
            _cache_warned = True
            print(f"warning: {message} (further cache files that cannot be written are skipped silently)",
                  file=sys.stderr, flush=True)
        return False


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
