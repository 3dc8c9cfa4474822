"""The Optuna storage that every unit of work is claimed and recorded through.

One storage per run: a journal file in the run folder by default (no server; safe for several
processes on one machine), or a database URL (PostgreSQL for several machines). A unit of work is
an Optuna trial: a worker claims it (``RUNNING``, with its identity in the trial's user attributes
and a heartbeat that a background thread refreshes), and records its outcome in it. A trial whose
worker is gone (its process is dead on this host, or its heartbeat is older than ``grace_period``)
is failed by whoever notices, and its work is queued again.

Optuna's own heartbeat (``RDBStorage(heartbeat_interval=...)``) exists only for databases and only
inside ``Study.optimize``; the units here are asked and told one at a time on either storage, so the
heartbeat is a user attribute, refreshed by ``Heartbeat``, and a dead process on this host is
recognised at once instead of after the grace period.

A database storage waits out an outage of up to ``wait`` seconds (``protocol.storage_wait``), every
call retried, heartbeat included (``storage_retry``); past it the worker ends with
``StorageUnavailableError``, and its trial, still RUNNING if the database did not come back in time,
is taken over by the next worker on this host at once (its process is dead) or elsewhere after the
grace period. A trial taken but never claimed (its worker died or gave up between the two) is stale
``storage_wait`` + ``CLAIM_MARGIN`` seconds after its start.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from pathlib import Path
from typing import Optional

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.trial import FrozenTrial, TrialState

from benchmark.errors import ConfigError
from benchmark.io import pid_alive
from benchmark.protocol.journal_repair import repair_journal
from benchmark.protocol.storage_retry import PatientStorage
from benchmark.secrets import redact_text, redact_url

KEY = "config key 'protocol.storage'"

log = logging.getLogger(__name__)

WORKER_ATTR = "worker"
#: The boot and PID namespace of the worker: a pid is checked only against workers that share both
#: (containers can share a hostname but not their process ids).
WORKER_NS_ATTR = "worker_ns"
HEARTBEAT_ATTR = "heartbeat"
JOURNAL_FILE = "optuna.journal"

#: SQLAlchemy drivers for PostgreSQL, in order of preference, with the module that must import.
POSTGRES_DRIVERS = (("psycopg", "psycopg"), ("psycopg2", "psycopg2"))
POSTGRES_INSTALL = 'pip install "dml-bench[postgres]" (psycopg 3), or psycopg2-binary'


def resolve_storage_url(url: str) -> str:
    """The SQLAlchemy URL to connect with: ``postgresql://`` gets an installed driver named explicitly.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; a user who installed psycopg2 (the
    driver most guides name) would get an import error. Whichever of the two is installed is used.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"{KEY}: {redact_url(url)!r} is not a database URL (expected e.g. "
                          f"postgresql://user:password@host/database)") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver:
            modules = {d: m for d, m in POSTGRES_DRIVERS}
            _require_module(modules.get(driver, driver), url)
            return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)
        for name, module in POSTGRES_DRIVERS:
            if _importable(module):
                return parsed.set(drivername=f"postgresql+{name}").render_as_string(hide_password=False)
        raise ConfigError(f"{KEY}: the database driver for {redact_url(url)!r} is not installed "
                          f"(module 'psycopg' or 'psycopg2'): {POSTGRES_INSTALL}")
    return url


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _require_module(module: str, url: str) -> None:
    if not _importable(module):
        raise ConfigError(f"{KEY}: the database driver for {redact_url(url)!r} is not installed "
                          f"(module {module!r}): {POSTGRES_INSTALL}")


#: Seconds a connection attempt to a PostgreSQL server may take during a run (then it is retried).
CONNECT_TIMEOUT = 5
#: Seconds a database storage waits out an outage by default (``protocol.storage_wait``).
DEFAULT_WAIT = 120.0
#: Seconds beyond ``protocol.storage_wait`` after which a RUNNING trial that no worker claimed is stale.
CLAIM_MARGIN = 60.0


def create_storage(url: Optional[str], run_dir: Path, *, wait: float = DEFAULT_WAIT) -> BaseStorage:
    """The storage at ``url``, or a journal file ``run_dir/optuna.journal`` when ``url`` is None.

    A journal whose last record was cut off (power loss, full disk) is repaired first. Several
    workers may start on a fresh database at once: the schema is created by one of them. A database
    that stops answering is waited for, at most ``wait`` seconds per outage (``PatientStorage``).
    """
    if url is None:
        from optuna.storages.journal import JournalFileBackend

        path = run_dir / JOURNAL_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_journal(path)
        backend = JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    display = redact_url(url)
    return PatientStorage(_create_rdb_storage(resolve_storage_url(url), display=display), wait=wait, display=display)


def _create_rdb_storage(url: str, *, display: str) -> BaseStorage:
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    last: Exception | None = None
    for attempt in range(10):
        try:
            with _schema_lock(url):
                rdb = optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
            return _CachedStorage(rdb)  # what Optuna itself would wrap an RDBStorage in
        except (IntegrityError, ProgrammingError) as exc:  # another worker created the schema at the same moment
            last = exc
            time.sleep(0.1 + random.random() * 0.2 * (attempt + 1))
        except OperationalError as exc:
            first = str(exc.orig if getattr(exc, "orig", None) is not None else exc).strip().splitlines()[0]
            raise ConfigError(f"storage {display} cannot be reached ({redact_text(first)})") from None
    raise ConfigError(f"storage {display}: could not create Optuna's tables ({redact_text(str(last))})")


#: The most database connections a worker holds at once: one for the unit's thread, one for the heartbeat
#: thread (each only while a storage call runs), and at start the schema lock beside Optuna's table check;
#: ``pg_stat_activity`` sampled at 3 workers saw a peak of 3 for one worker (tests/protocol/test_signals.py).
MAX_CONNECTIONS = 3


def _engine_kwargs(url: str) -> dict:
    """No connection pool (``NullPool``): a connection is opened for each storage call and closed after it, so a
    worker holds at most ``MAX_CONNECTIONS`` at once and none between calls (hundreds of training workers fit
    PostgreSQL's default limit of 100; a storage call costs a connection set-up, small beside a unit's
    training), and a database restart leaves no stale connection behind. A connection attempt to a
    PostgreSQL server that does not answer gives up after ``CONNECT_TIMEOUT`` seconds, and is retried; the
    server sees each connection as ``application_name`` ``dml-bench <host:pid>`` (``pg_stat_activity``)."""
    import sqlalchemy

    kwargs: dict = {"poolclass": sqlalchemy.pool.NullPool}
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT, "application_name": application_name()}
    return kwargs


def application_name() -> str:
    """How this worker's connections are named on a PostgreSQL server (at most 63 bytes)."""
    return f"dml-bench {worker_id()}"[:63]


class _schema_lock:
    """A PostgreSQL advisory lock held while Optuna creates or checks its tables (no-op elsewhere)."""

    KEY = 0x646D6C  # "dml"

    def __init__(self, url: str) -> None:
        self.url, self.engine, self.conn = url, None, None

    def __enter__(self) -> "_schema_lock":
        if not self.url.startswith("postgresql"):
            return self
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool,
                                               connect_args={"application_name": application_name()})
        self.conn = self.engine.connect()
        self.conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self.KEY})
        return self

    def __exit__(self, *exc) -> None:
        if self.conn is not None:
            import sqlalchemy

            try:
                self.conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self.KEY})
            finally:
                self.conn.close()
                self.engine.dispose()


def worker_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_namespace() -> str:
    """This boot's id and this process's PID namespace: pids are comparable only where both match."""
    parts = []
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(Path(path).read_text().strip() if path.endswith("boot_id") else os.readlink(path))
        except OSError:
            parts.append("?")
    return "|".join(parts)


def claim(trial: optuna.Trial) -> None:
    """Record this worker's identity and a first heartbeat on a trial it has just taken."""
    trial.set_user_attr(WORKER_ATTR, worker_id())
    trial.set_user_attr(WORKER_NS_ATTR, process_namespace())
    trial.set_user_attr(HEARTBEAT_ATTR, time.time())


def heartbeat_interval(grace_period: float) -> float:
    """How often a live worker refreshes its heartbeat: four times per grace period, at most once a minute."""
    return min(60.0, max(0.2, grace_period / 4.0))


class Heartbeat:
    """A background thread that keeps a claimed trial's heartbeat fresh while its unit runs.

    ``lost`` becomes True when the trial was finished by someone else (another worker judged this
    one dead and took the unit over): the unit's result will then be recorded as a late result.
    """

    def __init__(self, trial: optuna.Trial, interval: float) -> None:
        self.trial, self.interval = trial, interval
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{trial.number}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def beat(self) -> bool:
        """Refresh the heartbeat now; False once the trial is no longer this worker's."""
        if self.lost:
            return False
        try:
            self.trial.set_user_attr(HEARTBEAT_ATTR, time.time())
        except UpdateFinishedTrialError:
            self.lost = True
        except Exception as exc:  # noqa: BLE001 - a passing storage fault must not kill the unit; the next beat retries
            log.warning("heartbeat of trial %d failed (%s); retrying", self.trial.number, exc)
        return not self.lost

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.beat():
                return


def owner_is_dead(trial: FrozenTrial) -> bool:
    """True when the trial's worker ran on this host, in this PID namespace, and its process no longer exists."""
    worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or trial.user_attrs.get(WORKER_NS_ATTR) != process_namespace():
        return False  # another machine or container: only its heartbeat tells
    return pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid))


def is_stale(trial: FrozenTrial, grace_period: float, now: Optional[float] = None,
             claim_window: Optional[float] = None) -> bool:
    """A RUNNING trial whose worker is gone: a dead process on this host, or a heartbeat too old.

    With ``claim_window``, also a trial that no worker claimed within that many seconds of its start:
    its worker died, or gave up on the storage, between taking it and recording its identity.
    """
    if trial.state != TrialState.RUNNING:
        return False
    if owner_is_dead(trial):
        return True
    now = time.time() if now is None else now
    started = trial.datetime_start.timestamp() if trial.datetime_start is not None else None
    if claim_window is not None and WORKER_ATTR not in trial.user_attrs and started is not None \
            and now - started > claim_window:
        return True
    last = trial.user_attrs.get(HEARTBEAT_ATTR, started)
    return last is not None and now - float(last) > grace_period


def unclaimed_after(storage_wait: float) -> float:
    """Seconds after which an unclaimed RUNNING trial is stale: a live worker records its identity right
    after taking a trial, or within ``storage_wait`` (and one pause) while the storage is down."""
    return storage_wait + CLAIM_MARGIN


def fail_stale_trials(study: optuna.Study, grace_period: float, claim_window: Optional[float] = None) -> list[int]:
    """Mark the study's stale RUNNING trials as FAIL (see ``is_stale``); return their numbers."""
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_stale(t, grace_period, claim_window=claim_window):
            try:
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                failed.append(t.number)
                log.warning("%s: trial %d of worker %s taken over (worker gone)", study.study_name, t.number,
                            t.user_attrs.get(WORKER_ATTR, "?"))
            except (RuntimeError, ValueError, UpdateFinishedTrialError):  # another worker finished or failed it first
                pass
    return failed


def get_study(storage: BaseStorage, name: str, *, direction: str = "maximize",
              sampler: Optional[optuna.samplers.BaseSampler] = None,
              pruner: Optional[optuna.pruners.BasePruner] = None) -> optuna.Study:
    """The study ``name`` in ``storage``, created if absent (several workers may race to create it)."""
    return optuna.create_study(storage=storage, study_name=name, direction=direction, sampler=sampler,
                               pruner=pruner, load_if_exists=True)
