"""User-facing errors: bad input that the harness rejects with a one-line message and exit code 2."""

from __future__ import annotations


class BenchmarkError(Exception):
    """Base class of every error caused by the user's input (config, data, paths).

    The CLI prints ``error: <message>`` on one line and exits with status 2.
    """


class ConfigError(BenchmarkError):
    """Unknown or malformed configuration key, preset or value."""


class DatasetError(BenchmarkError):
    """Missing dataset folder, wrong on-disk layout, corrupt image or label mismatch."""


class RegistryError(BenchmarkError):
    """Unknown method, or a method registered twice."""


class RunDirError(BenchmarkError):
    """An output folder that belongs to a different configuration."""
