"""Fault injection for the resume tests: a worker kills (or stops) itself at a named point of its work.

``DML_BENCH_KILL_AT=<point>`` (or ``<point>#<n>`` for the n-th time the point is reached, 1 by
default) makes ``kill_point(<point>)`` send SIGKILL to its own process: no handler, no cleanup,
exactly what a power cut or the kernel's OOM killer does. ``DML_BENCH_STOP_AT`` sends SIGSTOP instead:
the worker freezes there (heartbeat included) until the test has sent it a real signal and SIGCONT, so
that a signal lands at a known point of a unit without guessing times. Unset, ``kill_point`` does nothing.
Points: ``search.fold_end``, ``repeat.trained``, ``test.evaluated``, ``export.results``,
``unit.fold_saved`` (a finished fold written to the unit's checkpoint), ``unit.state_saved`` (a running
fold's training state written).
"""

from __future__ import annotations

import os
import signal

ENV = "DML_BENCH_KILL_AT"
STOP_ENV = "DML_BENCH_STOP_AT"
POINTS = ("search.fold_end", "repeat.trained", "test.evaluated", "export.results", "unit.fold_saved",
          "unit.state_saved")
_reached: dict[tuple[str, str], int] = {}


def kill_point(name: str) -> None:
    """SIGKILL (``DML_BENCH_KILL_AT``) or SIGSTOP (``DML_BENCH_STOP_AT``) this process if the variable names this
    point and its count is reached (a stopped process goes on where it stopped once it gets SIGCONT)."""
    for env, sig in ((ENV, signal.SIGKILL), (STOP_ENV, signal.SIGSTOP)):
        spec = os.environ.get(env)
        if not spec:
            continue
        point, _, count = spec.partition("#")
        if point != name:
            continue
        _reached[env, name] = _reached.get((env, name), 0) + 1
        if _reached[env, name] == int(count or 1) or (sig == signal.SIGKILL and _reached[env, name] > int(count or 1)):
            os.kill(os.getpid(), sig)
