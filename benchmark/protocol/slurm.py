"""Starting a run's workers on a SLURM cluster: ``dml-bench submit slurm`` writes and submits a job array.

Each array task is one ordinary worker (``dml-bench run`` with the same config, the same ``--storage``
database and the same run folder), so nothing here schedules units: the storage hands them out exactly
once, whatever the number of tasks, and a task that ends early (time limit, preemption, ``scancel``)
leaves its unit to the others or to the next submission.

The launcher is a generated ``sbatch --array`` script, not submitit: the script is plain text that the
user can read, keep, edit and resubmit (``sbatch <run>/slurm/submit-<jobid>.sbatch``); it depends on no
Python package or pickled callable, so a worker on the compute node imports the installed code instead
of unpickling a function of the submitting process; and it works with any SLURM version, through the
same ``sbatch`` the cluster documents. submitit's advantages (requeue on timeout, results returned to
the submitter) are not needed: a worker's results are in the storage and the run folder.

What the script does (``render_script``): ``#SBATCH`` directives for the array, the time limit, the
CPUs and GPUs of each task, the partition and any ``--extra`` option; ``--signal=B:USR1@<lead>`` so that
the worker is told ``<lead>`` seconds before the time limit (``B:``: the batch step's process, which the
worker is, since the script ``exec``s it; a time limit's or a preemption's SIGTERM reaches it the same
way); every task's output in ``<run>/slurm/<jobid>_<task>.log``; ``OMP_NUM_THREADS`` set to the task's
CPUs; then ``exec`` the worker with the Python that ran ``submit``.

The storage password is never written into the script nor anywhere in the run folder (which users copy
and publish): a URL that holds one is written to ``~/.config/dml-bench/storage/<hash>.url`` (mode 600;
``$XDG_CONFIG_HOME`` moves it), which the worker reads (``run --storage-file``); the home folder must
be visible on the compute nodes, as it is on most clusters. A URL without a password (``~/.pgpass``) is
written into the script as it is. A local journal file or SQLite is refused: it is not shared safely
between nodes.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from benchmark.errors import BenchmarkError, ConfigError
from benchmark.io import temporary_path
from benchmark.secrets import has_secret, redact_text

#: The signal that tells a worker its time is nearly up (the worker then releases its unit and exits).
SIGNAL = "USR1"
#: Seconds before the time limit at which SIGNAL is sent, unless ``--signal-before`` says otherwise
#: (at most half the time limit). SLURM may send it up to a minute early.
SIGNAL_LEAD = 120
#: The run folder's sub-folder of scripts and logs.
SLURM_DIR = "slurm"
#: Database backends whose server every node can reach.
NETWORK_BACKENDS = ("postgresql", "mysql", "mariadb", "oracle", "mssql")
#: sbatch options the launcher writes itself, with the flag of ``submit`` that sets each.
OWN_OPTIONS = {"--array": "--tasks", "-a": "--tasks", "--output": "(the launcher's log files)",
               "-o": "(the launcher's log files)", "--error": "(the launcher's log files)",
               "-e": "(the launcher's log files)", "--open-mode": "(the launcher's log files)",
               "--signal": "--signal-before", "--time": "--time", "-t": "--time", "--partition": "--partition",
               "-p": "--partition", "--cpus-per-task": "--cpus-per-task", "-c": "--cpus-per-task",
               "--gres": "--gpus-per-task", "--gpus": "--gpus-per-task", "-G": "--gpus-per-task",
               "--gpus-per-task": "--gpus-per-task", "--gpus-per-node": "--gpus-per-task",
               "--ntasks": "(one worker per array task)", "-n": "(one worker per array task)",
               "--wrap": "(the launcher's script)", "--parsable": "(the launcher's submission)",
               "--test-only": "--dry-run"}
#: ``run`` flags that the worker's command line sets itself.
_NOT_FORWARDED = {"out", "storage", "storage_file", "no_report", "no_progress", "workers", "help"}
#: Characters that SLURM or the script would read differently in a path written into a directive.
_UNSAFE_PATH = re.compile(r"[\s%\"'\\$`]")
_NAME = re.compile(r"^[A-Za-z0-9_.,+-]+$")


class SlurmError(BenchmarkError):
    """A submission SLURM cannot take, or ``sbatch`` missing or refusing the job (exit status 2)."""


@dataclass(frozen=True)
class SlurmRequest:
    """What each array task asks of the cluster."""

    tasks: int
    time: str
    cpus_per_task: int = 1
    gpus_per_task: int = 0
    partition: Optional[str] = None
    extra: tuple[str, ...] = ()
    signal_before: Optional[int] = None


@dataclass(frozen=True)
class SlurmJob:
    """A checked submission: the script's text and where its pieces go."""

    run_dir: Path
    script: str
    tasks: int
    #: the storage URL to write to ``secret_path`` (it holds a password), or None
    secret_url: Optional[str]
    secret_path: Optional[Path]
    #: the storage URL as the worker gets it, password masked, for messages
    storage_shown: str

    @property
    def slurm_dir(self) -> Path:
        return self.run_dir / SLURM_DIR


def parse_time(text: str) -> int:
    """Seconds of a SLURM time limit: ``minutes``, ``minutes:seconds``, ``hours:minutes:seconds``,
    ``days-hours``, ``days-hours:minutes`` or ``days-hours:minutes:seconds``."""
    expected = "expected HH:MM:SS, MM, MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, as sbatch takes it, e.g. 4:00:00"
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)((?::\d+){0,2})", text.strip())
    if match is None:
        raise SlurmError(f"--time {text!r} is not a time limit ({expected})")
    days, first, rest = match.group(1), int(match.group(2)), [int(x) for x in match.group(3).split(":")[1:]]
    if days is not None:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = [first, *rest] + [0] * (2 - len(rest))
        bounded = {"hours": (hours, 24), "minutes": (minutes, 60), "seconds": (seconds, 60)}
        total = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    elif len(rest) == 2:  # hours:minutes:seconds
        hours, minutes, seconds = first, *rest
        bounded = {"minutes": (minutes, 60), "seconds": (seconds, 60)}
        total = (hours * 60 + minutes) * 60 + seconds
    elif len(rest) == 1:  # minutes:seconds
        bounded = {"seconds": (rest[0], 60)}
        total = first * 60 + rest[0]
    else:  # minutes
        bounded, total = {}, first * 60
    for unit, (value, bound) in bounded.items():
        if value >= bound:
            raise SlurmError(f"--time {text!r}: {value} {unit}, expected fewer than {bound} ({expected})")
    if total <= 0:
        raise SlurmError(f"--time {text!r} is zero ({expected})")
    return total


def signal_lead(request: SlurmRequest) -> int:
    """Seconds before the time limit at which the worker is signalled."""
    limit = parse_time(request.time)
    if request.signal_before is None:
        return max(1, min(SIGNAL_LEAD, limit // 2))
    if not 0 < request.signal_before < limit:
        raise SlurmError(f"--signal-before {request.signal_before} must be more than 0 and less than the time limit "
                         f"--time {request.time} ({limit} s)")
    if request.signal_before > 65535:
        raise SlurmError(f"--signal-before {request.signal_before}: SLURM takes at most 65535 seconds")
    return request.signal_before


def extra_directives(extra: Sequence[str]) -> list[str]:
    """``--extra "--account=lab --qos high -C v100"`` as one ``#SBATCH`` option each; options the launcher
    writes itself are refused (naming the flag of ``submit`` that sets them)."""
    lines: list[str] = []
    for text in extra:
        if "\n" in text or "\r" in text:
            raise SlurmError(f"--extra {text!r} holds a line break (expected sbatch options on one line)")
        try:
            tokens = shlex.split(text)
        except ValueError as exc:
            raise SlurmError(f"--extra {text!r} cannot be split into options ({exc})") from None
        if not tokens:
            raise SlurmError("--extra is empty (expected sbatch options, e.g. --extra '--account=lab --qos=high')")
        current: list[str] = []
        for token in tokens:
            if token.startswith("-"):
                if current:
                    lines.append(_directive(current, text))
                current = [token]
            elif current and len(current) == 1 and "=" not in current[0]:
                current.append(token)
            else:
                raise SlurmError(f"--extra {text!r}: {token!r} is not an sbatch option (options start with -, "
                                 f"e.g. --extra '--account=lab --qos=high')")
        lines.append(_directive(current, text))
    return lines


def _directive(option: list[str], text: str) -> str:
    name = option[0].split("=", 1)[0]
    if name in OWN_OPTIONS:
        raise SlurmError(f"--extra {text!r}: {name} is written by the launcher; set it with {OWN_OPTIONS[name]}")
    if len(option) == 2 and name.startswith("--"):
        return f"{name}={shlex.quote(option[1])}"
    return " ".join(shlex.quote(part) for part in option)


def check_storage(url: Optional[str]) -> None:
    """A database server that every node can reach; a journal file or SQLite is refused."""
    if url is None:
        raise SlurmError("submit slurm needs --storage (or --storage-file) with a database server every node reaches, "
                         "e.g. postgresql://user@dbhost/dmlbench: the default journal file in the run folder is not "
                         "safe to share between nodes (see docs/tutorials/workers-postgresql.md)")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        raise ConfigError(f"config key 'protocol.storage': {redact_text(url)!r} is not a storage URL (expected e.g. "
                          f"postgresql://user@dbhost/dmlbench)") from None
    if backend not in NETWORK_BACKENDS:
        raise SlurmError(f"--storage {redact_text(url)!r} is a {backend} database, which workers on several nodes "
                         f"cannot share safely; give a database server, e.g. postgresql://user@dbhost/dmlbench")


def check_request(request: SlurmRequest, device: str) -> None:
    """Every option of the request, before anything is written."""
    if request.tasks < 1:
        raise SlurmError(f"--tasks {request.tasks}: expected at least 1 array task")
    if request.cpus_per_task < 1:
        raise SlurmError(f"--cpus-per-task {request.cpus_per_task}: expected at least 1")
    if request.gpus_per_task < 0:
        raise SlurmError(f"--gpus-per-task {request.gpus_per_task}: expected 0 (no GPU) or more")
    if request.partition is not None and not _NAME.match(request.partition):
        raise SlurmError(f"--partition {request.partition!r} is not a partition name (letters, digits, _ . , + -)")
    signal_lead(request)  # checks --time too
    extra_directives(request.extra)
    if request.gpus_per_task == 0 and device.startswith("cuda"):
        raise SlurmError(f"config key 'device' is {device!r}, but the tasks ask for no GPU (give --gpus-per-task, or "
                         f"--device auto/cpu)")
    if request.gpus_per_task > 0 and device == "cpu":
        raise SlurmError(f"--gpus-per-task {request.gpus_per_task} with config key 'device' 'cpu': the GPUs would "
                         f"sit idle (use --device auto or cuda)")


def check_path(path: Path, what: str) -> None:
    """A path written into the script: no character that sbatch or bash would read differently."""
    if _UNSAFE_PATH.search(str(path)):
        raise SlurmError(f"{what} {str(path)!r} holds a space, quote, %, $, ` or backslash, which sbatch's "
                         f"directives do not take; choose a path without them")


def worker_arguments(actions: Sequence[argparse.Action], args: argparse.Namespace) -> list[str]:
    """The ``run`` options of ``args`` (parsed with ``run``'s ``actions``) that the worker repeats: every one
    given, except the folder, storage, worker-count and progress options that the script sets itself; a
    config file by its absolute path."""
    out: list[str] = []
    for action in actions:
        if not action.option_strings or action.dest in _NOT_FORWARDED or not hasattr(args, action.dest):
            continue
        value, flag = getattr(args, action.dest), action.option_strings[-1]
        if value is None or value == action.default or value is False:
            continue
        if action.dest == "config":
            value = str(Path(value).expanduser().absolute())
        if isinstance(action, argparse._StoreTrueAction):
            out.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for item in value:
                out += [flag, str(item)]
        else:
            out += [flag, str(value)]
    return out


def render_script(*, request: SlurmRequest, run_dir: Path, workdir: Path, python: str, run_args: Sequence[str],
                  storage_args: Sequence[str], workers: str, job_name: str) -> str:
    """The sbatch script: one worker per array task (see the module docstring)."""
    from benchmark import __version__

    slurm_dir = run_dir / SLURM_DIR
    lead = signal_lead(request)
    directives = [f"--job-name={job_name}", f"--array=0-{request.tasks - 1}", "--ntasks=1",
                  f"--cpus-per-task={request.cpus_per_task}"]
    if request.gpus_per_task:
        directives.append(f"--gres=gpu:{request.gpus_per_task}")
    directives.append(f"--time={request.time}")
    if request.partition:
        directives.append(f"--partition={request.partition}")
    directives += [f"--signal=B:{SIGNAL}@{lead}", f"--output={slurm_dir}/%A_%a.log", "--open-mode=append"]
    directives += extra_directives(request.extra)
    command = [python, "-c", "from benchmark.cli import entry_point; entry_point()", "run", *run_args,
               "--out", str(run_dir), *storage_args, "--workers", workers, "--no-progress"]
    threads = request.cpus_per_task
    lines = [
        "#!/bin/bash",
        f"# Written by `dml-bench submit slurm` (dml-bench {__version__}), "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}: one worker of the run",
        f"# {run_dir} per array task; the workers share its storage and its run folder, and each unit is done once.",
        "# Submit it again (sbatch THIS_FILE) to add workers or to continue a run whose tasks ran out of time.",
        *[f"#SBATCH {d}" for d in directives],
        "set -euo pipefail",
        f"cd {shlex.quote(str(workdir))}",
        f"export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}",
        'echo "dml-bench: array task ${SLURM_ARRAY_TASK_ID:-?} of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname),'
        ' pid $$, $(date -u +%Y-%m-%dT%H:%M:%SZ)"',
        f"# exec: the worker becomes the batch step's process, so that SIG{SIGNAL} (B:), a time limit's SIGTERM",
        "# and a preemption's reach it and it releases its unit before it exits.",
        "exec " + " \\\n    ".join(_command_lines(command)),
        "",
    ]
    return "\n".join(lines)


def _command_lines(command: list[str]) -> list[str]:
    """The command quoted, one option (with its value) per line."""
    lines: list[str] = []
    for part in command:
        quoted = shlex.quote(part)
        if part.startswith("--") or not lines:
            lines.append(quoted)
        else:
            lines[-1] += " " + quoted
    return lines


def plan_job(*, request: SlurmRequest, run_dir: Path, device: str, storage: Optional[str],
             storage_file: Optional[str], run_args: Sequence[str], workers: Optional[str], job_name: str,
             workdir: Optional[Path] = None, python: Optional[str] = None) -> SlurmJob:
    """The checked job: options, storage kind, paths; the script's text. Writes nothing."""
    run_dir = Path(run_dir).expanduser().absolute()
    check_request(request, device)
    check_storage(storage)
    check_path(run_dir, "the run folder")
    workdir = (workdir or Path.cwd()).absolute()
    secret_url = secret_path = None
    if storage_file is not None:
        path = Path(storage_file).expanduser().absolute()
        check_path(path, "--storage-file")
        storage_args = ["--storage-file", str(path)]
    elif has_secret(storage):
        secret_url, secret_path = storage, secret_file(storage)
        check_path(secret_path, "the storage URL's file")
        storage_args = ["--storage-file", str(secret_path)]
    else:
        storage_args = ["--storage", storage]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", job_name).strip("-") or "run"
    script = render_script(request=request, run_dir=run_dir, workdir=workdir, python=python or sys.executable,
                           run_args=run_args, storage_args=storage_args, workers=workers or "1",
                           job_name=f"dml-bench-{name}")
    return SlurmJob(run_dir=run_dir, script=script, tasks=request.tasks, secret_url=secret_url,
                    secret_path=secret_path, storage_shown=redact_text(storage))


def secret_file(url: str) -> Path:
    """Where a storage URL with a password is kept for the workers: one file per database and user, in the
    user's configuration folder (not the run folder, which is copied and published). The name hashes the URL
    with its password masked: the script that names the file says nothing about the password."""
    import hashlib

    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config").expanduser().absolute()
    digest = hashlib.sha256(redact_text(url).encode()).hexdigest()[:16]
    return base / "dml-bench" / "storage" / f"{digest}.url"


def find_sbatch() -> str:
    path = shutil.which("sbatch")
    if path is None:
        raise SlurmError("sbatch is not on this machine's PATH (run submit on a SLURM login node, or --dry-run to "
                         "print the script)")
    return path


def _sbatch(sbatch: str, options: Sequence[str], script: str, *, stdin: Optional[str] = None) -> str:
    """Run sbatch; its stdout, or SlurmError with its last line of stderr."""
    try:
        proc = subprocess.run([sbatch, *options, *([script] if stdin is None else [])], input=stdin,
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"sbatch could not be run ({exc})") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()] or [f"exit status {proc.returncode}"]
        raise SlurmError(f"sbatch refused the job: {redact_text(lines[-1])}")
    return proc.stdout


def write_secret(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only from the moment it exists (mode 600), atomically;
    a folder it creates is the owner's only (mode 700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = temporary_path(path, ".tmp")  # mkstemp: mode 600
    try:
        os.chmod(tmp, 0o600)
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def submit(job: SlurmJob, *, prepare: Callable[[], None], check_storage_url: Callable[[], None]) -> tuple[str, Path]:
    """Submit ``job``; return its job id and the script's path (``<run>/slurm/submit-<jobid>.sbatch``).

    Before anything is written: ``sbatch`` is found, the script is checked by ``sbatch --test-only`` (a
    partition, account or limit the cluster refuses), ``check_storage_url()`` connects to the storage. Then
    ``prepare()`` (the run folder: config and provenance), the storage URL file when it holds a password,
    the script, and ``sbatch --parsable``. When the submission fails, what this call wrote is removed.
    """
    sbatch = find_sbatch()
    _sbatch(sbatch, ["--test-only"], "", stdin=job.script)
    check_storage_url()
    run_dir, slurm_dir = job.run_dir, job.slurm_dir
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    made_slurm_dir = not slurm_dir.exists()
    secret = job.secret_path
    new_secret = secret is not None and not secret.exists()
    pending = None
    try:
        prepare()
        slurm_dir.mkdir(parents=True, exist_ok=True)
        if secret is not None:
            write_secret(secret, job.secret_url)
        pending = slurm_dir / f".submit-{os.getpid()}.sbatch"
        pending.write_text(job.script, encoding="utf-8")
        out = _sbatch(sbatch, ["--parsable"], str(pending))
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise SlurmError(f"sbatch answered {out.strip()!r}, not a job id; see squeue")
    except BaseException:
        if pending is not None:
            pending.unlink(missing_ok=True)
        if created:
            shutil.rmtree(created[-1], ignore_errors=True)
        elif made_slurm_dir:
            shutil.rmtree(slurm_dir, ignore_errors=True)
        if new_secret:
            secret.unlink(missing_ok=True)
        raise
    script = slurm_dir / f"submit-{job_id}.sbatch"
    os.replace(pending, script)
    return job_id, script


def follow_lines(job: SlurmJob, job_id: str, script: Path) -> list[str]:
    """What ``submit`` prints: the job, where its script and logs are, how to follow and stop it."""
    last = job.tasks - 1
    run = shlex.quote(str(job.run_dir))
    return [
        f"submitted job {job_id}: {job.tasks} worker{'s' if job.tasks > 1 else ''} (array tasks 0-{last}) of the run "
        f"{job.run_dir} on {job.storage_shown}",
        f"  script:  {script}",
        f"  logs:    {job.slurm_dir}/{job_id}_<task>.log",
        f"  follow:  squeue -j {job_id}    tail -f {job.slurm_dir}/{job_id}_0.log",
        f"  results: the last worker writes the tables to {job.run_dir / 'tables'}; dml-bench report {run}",
        f"  stop:    scancel {job_id} (each worker releases its unit; submit again to continue the run)",
    ]
