"""User-facing errors: one-line messages that the CLI prints as ``error: ...`` with a distinct exit status.

Bad input exits with status 2; a full disk (``DiskFullError``) with 3; a storage database that stopped
answering for longer than ``protocol.storage_wait`` (``StorageUnavailableError``) with 4.
"""

from __future__ import annotations

import os


class BenchmarkError(Exception):
    """Base class of every error caused by the user's input (config, data, paths) or their machine.

    The CLI prints ``error: <message>`` on one line and exits with ``exit_status`` (2 for bad input).
    """

    exit_status = 2


class ConfigError(BenchmarkError):
    """Unknown or malformed configuration key, preset or value."""


class DatasetError(BenchmarkError):
    """Missing dataset folder, wrong on-disk layout, corrupt image or label mismatch."""


class RegistryError(BenchmarkError):
    """Unknown method, or a method registered twice."""


class RunDirError(BenchmarkError):
    """An output folder that belongs to a different configuration."""


class DiskFullError(BenchmarkError):
    """No space left on the device (or the disk quota is spent) while writing ``path``: exit status 3.

    What was written before is intact (every result file is written atomically), so a re-run of the
    same command after freeing space resumes the run.
    """

    exit_status = 3

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        super().__init__(f"no space left on device while writing {self.path}; free space and re-run the same "
                         f"command to resume")


class StorageUnavailableError(BenchmarkError):
    """The storage database did not answer for longer than ``protocol.storage_wait`` seconds: exit status 4."""

    exit_status = 4
