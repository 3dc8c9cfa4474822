"""Fault injection for the resume tests: a worker kills itself (SIGKILL) at a named point of its work.

``DML_BENCH_KILL_AT=<point>`` (or ``<point>#<n>`` for the n-th time the point is reached, 1 by
default) makes ``kill_point(<point>)`` send SIGKILL to its own process: no handler, no cleanup,
exactly what a power cut or the kernel's OOM killer does. Unset, ``kill_point`` does nothing.
Points: ``search.fold_end``, ``repeat.trained``, ``test.evaluated``, ``export.results``.
"""

from __future__ import annotations

import os
import signal

ENV = "DML_BENCH_KILL_AT"
POINTS = ("search.fold_end", "repeat.trained", "test.evaluated", "export.results")
_reached: dict[str, int] = {}


def kill_point(name: str) -> None:
    """SIGKILL this process if ``DML_BENCH_KILL_AT`` names this point (and its count is reached)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, count = spec.partition("#")
    if point != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
