"""Waiting out a storage database that stops answering (a restart, a failover, a network cut).

``PatientStorage`` wraps Optuna's database storage: every call that fails because the database
cannot be reached (SQLAlchemy's ``OperationalError``, ``InterfaceError``, an invalidated connection,
also when Optuna wraps them in its ``StorageInternalError``) is retried with a growing pause (0.5 s,
doubling, at most ``MAX_PAUSE``) until the database has not answered for ``wait`` seconds
(``protocol.storage_wait``), counted from the outage's first failure, whichever thread met it (the
heartbeat thread and the unit's thread share one outage). Past the wait the call raises
``StorageUnavailableError`` naming the storage with its password masked, and later calls try once
without waiting until the database answers again: a worker that gives up cleans up (fails its
running trial) if the database is back, and exits without waiting again if it is not.

The outage prints one warning line when it starts and one when it ends. A state change that was
committed although its answer was lost (``set_trial_state_values`` retried, and the trial is already
in the state it asked for) counts as done.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Callable

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage

from benchmark.errors import StorageUnavailableError
from benchmark.secrets import redact_text

log = logging.getLogger(__name__)

#: The longest pause between two tries, in seconds (how soon a database that is back is noticed).
MAX_PAUSE = 5.0
FIRST_PAUSE = 0.5


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) says the database could not be reached."""
    from sqlalchemy import exc as sa

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, sa.TimeoutError)):
            return True
        if isinstance(current, sa.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def _reason(exc: BaseException) -> str:
    """The first line of the database driver's own message (or of ``exc``), password masked."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "orig", None) is not None:
            exc = current.orig
            break
        current = current.__cause__ or current.__context__
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return redact_text(line)[:200]


class _QuietFallback(logging.Filter):
    """Drop Optuna's multi-line warning that a query failed and a slower one is tried: the failure it
    reports is the outage, which ``PatientStorage`` reports in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Caught an error from sqlalchemy")


_QUIET = _QuietFallback()


class PatientStorage(BaseStorage):
    """``inner`` with every call retried while the database is unreachable, for at most ``wait`` seconds."""

    def __init__(self, inner: BaseStorage, *, wait: float, display: str) -> None:
        self._inner, self.wait, self.display = inner, float(wait), display
        logging.getLogger("optuna.storages._rdb.storage").addFilter(_QUIET)
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._gave_up = False

    def __getattr__(self, name: str) -> Any:  # anything not of ``BaseStorage`` (e.g. ``engine``)
        inner = self.__dict__.get("_inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def _call(self, name: str, args: tuple, kwargs: dict) -> Any:
        method: Callable = getattr(self._inner, name)
        pause, retried = FIRST_PAUSE, False
        while True:
            try:
                result = method(*args, **kwargs)
            except UpdateFinishedTrialError:
                if retried and name == "set_trial_state_values" and self._already_in(*args, **kwargs):
                    self._answered()
                    return True
                raise
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                left = self._failed(exc)
                if left <= 0:
                    raise StorageUnavailableError(
                        f"storage {self.display} did not answer for {self.wait:g} s (protocol.storage_wait; "
                        f"{_reason(exc)}); re-run the same command once it answers: this worker's unfinished "
                        f"unit will be redone") from None
                time.sleep(min(pause, left))
                pause, retried = min(2 * pause, MAX_PAUSE), True
                continue
            self._answered()
            return result

    def _already_in(self, trial_id: int, state, values=None) -> bool:
        """A retried state change whose first try was committed (its answer lost on the way)."""
        try:
            trial = self._inner.get_trial(trial_id)
        except Exception:  # noqa: BLE001 - cannot tell: report the refusal itself
            return False
        return trial.state == state and (values is None or list(trial.values or []) == list(values))

    def _failed(self, exc: BaseException) -> float:
        """Record a failure; the seconds left to wait (0 or less: give up)."""
        now = time.monotonic()
        with self._lock:
            if self._gave_up:
                return 0.0
            if self._down_since is None:
                self._down_since = now
                message = (f"storage {self.display} is not answering ({_reason(exc)}); retrying for up to "
                           f"{self.wait:g} s (protocol.storage_wait)")
                log.warning(message)
                print(f"warning: {message}", file=sys.stderr, flush=True)
            left = self._down_since + self.wait - now
            if left <= 0:
                self._gave_up = True
                log.error("storage %s did not answer for %g s: giving up", self.display, self.wait)
            return left

    def _answered(self) -> None:
        if self._down_since is None:  # the common case, without taking the lock
            return
        with self._lock:
            if self._down_since is None:
                return
            message = f"storage {self.display} answers again after {time.monotonic() - self._down_since:.0f} s"
            self._down_since, self._gave_up = None, False
        log.warning(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)


def _retrying(name: str) -> Callable:
    def call(self: PatientStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(BaseStorage, name).__doc__
    return call


#: Every public method of Optuna's storage interface goes through ``_call``.
STORAGE_METHODS = tuple(n for n in dir(BaseStorage) if not n.startswith("_") and callable(getattr(BaseStorage, n)))
for _name in STORAGE_METHODS:
    setattr(PatientStorage, _name, _retrying(_name))
PatientStorage.__abstractmethods__ = frozenset()
