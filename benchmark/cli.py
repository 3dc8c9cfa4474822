"""The command line: ``dml-bench`` / ``python run_benchmark.py`` {list-methods, prepare, plan, run, submit,
evaluate, export, report}.

Bad input (a malformed argument, an unknown or out-of-range config key, an output folder that
cannot be used, an unreachable storage, a missing or malformed dataset, a run folder of another
config) prints one line ``error: ...`` and exits with status 2, before anything is written.
Faults of the machine also end in one line ``error: ...``, with their own exit status; re-running
the same command resumes the run:

* 3: no space left on the device (or the disk quota spent) while writing a file: the run folder,
  a result file, the report's tables and plots. Nothing is left half-written; a run folder that
  this invocation created before the run started is removed again.
* 4: the storage database did not answer for longer than ``protocol.storage_wait`` seconds. The
  worker's unfinished unit is released (failed) if the database answers during the cleanup, and
  otherwise taken over at once by the next worker started on the same host.
* 130: Ctrl-C (SIGINT); 138: SIGUSR1 (what a batch scheduler such as SLURM sends ahead of a time limit or a
  preemption, ``--signal=USR1@90``); 143: SIGTERM (a scheduler's stop, ``kill``). The worker stops its unit
  at the next training iteration, after writing the unit's checkpoint to the run folder
  (``<run>/checkpoints``), releases the unit in the storage (recorded failed, marked ``released``), so that
  another live worker takes it up at once and resumes it from the checkpoint, and exits within seconds with
  one line. Outside training (a test evaluation, storage calls) the signal takes effect at once, or after
  Optuna's storage code returns; a training loop that does not reach its next iteration within
  ``STOP_WAIT`` seconds is stopped anyway (its last validation's checkpoint stands). A second Ctrl-C exits
  at once (130, nothing recorded: the unit is taken over when its worker is found dead); a second SIGTERM
  ends the process at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path
from typing import Optional, Sequence

from benchmark.config import list_presets
from benchmark.protocol.artifacts import SAVE_MODES
from benchmark.constants import LATEX_WIDTHS
from benchmark.errors import BenchmarkError, DiskFullError
from benchmark.io import is_disk_full
from benchmark.secrets import redact_text
from benchmark.training import interrupt

RESULTS_DIR = Path("results")
#: The run folder this command writes to (named by a full disk's message when the failed write did not say).
_run_dir: Optional[Path] = None


def _add_run_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    _add_config_args(p, required=required)
    p.add_argument("--out", help="run folder (default: results/<config name>)")
    p.add_argument("--trials", type=int, help="search trials per method and dataset")
    p.add_argument("--repeats", type=int, help="repeats of the best configuration")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--storage", help="Optuna storage URL shared by several workers (default: a journal file "
                                         "in the run folder); taken as a plain string. Its password is masked in "
                                         "everything the run writes; better, keep it out of the URL (~/.pgpass or "
                                         "PGPASSWORD for PostgreSQL)")
    store.add_argument("--storage-file", help="a file (mode 600) whose first line is the storage URL: its password "
                                              "stays out of the command line and the process list")
    p.add_argument("--allow-config-change", action="store_true",
                   help="continue a run folder whose stored config differs from this one")
    p.add_argument("--workers", help="worker processes to start on this machine, or auto (every core; one per "
                                     "GPU); they share the run's storage (default: protocol.workers)")
    p.add_argument("--no-report", action="store_true", help=argparse.SUPPRESS)  # a worker started by --workers
    p.add_argument("--save", choices=list(SAVE_MODES),
                   help="keep in RUN/artifacts/ each repeat's test embeddings with labels (.npz, which dml-bench "
                        "evaluate RUN re-scores), each fold model's best weights (.safetensors), both, or none "
                        "(default: protocol.save); see docs/reference/run-folder.md for the disk cost")


def _add_config_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """What chooses a config: shared by ``run``, ``plan`` and ``prepare``."""
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--preset", help=f"a preset from configs/ ({', '.join(list_presets())})")
    src.add_argument("--config", help="a YAML config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set training.max_epochs=3; a list entry by index or "
                        "name: --set datasets[0].root=/data/CUB_200_2011, datasets[name=cub200].root=... "
                        "(repeatable)")
    p.add_argument("--methods", help="comma-separated methods (overrides the config's list)")
    p.add_argument("--datasets", help="comma-separated dataset names (keeps the config's entries of these names, "
                                      "or adds them with default options)")
    p.add_argument("--folds", type=int, help="cross-validation folds")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, help="run seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so that it takes the path of Ctrl-C (the unit in progress is
    checkpointed and released); deferred while the main thread is inside Optuna's storage or SQLAlchemy code,
    whose locks and records an exception there would leave half-done, and, while a fold trains, until the
    training loop's next iteration (``benchmark.training.interrupt``)."""

    signum, signal_name, exit_status = signal.SIGTERM, "SIGTERM", 143


class Preempted(KeyboardInterrupt):
    """SIGUSR1 (a scheduler's warning before a time limit or a preemption): as SIGTERM, with its own exit status."""

    signum, signal_name, exit_status = signal.SIGUSR1, "SIGUSR1", 138


#: Seconds a training loop has to take up a stop request before the signal's exception is raised anyway.
STOP_WAIT = 5.0


def _storage_code() -> tuple[str, ...]:
    """The folders of the code that must not be interrupted half-way: Optuna's storages (a journal file's lock,
    a record half-appended) and SQLAlchemy (a database transaction). Found without importing them."""
    import importlib.util

    folders = []
    for package, sub in (("optuna", "storages"), ("sqlalchemy", "")):
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            folders.append(os.path.join(location, sub, "") if sub else os.path.join(location, ""))
    return tuple(folders)


def _in_storage_code(frame) -> bool:
    critical = _storage_code()
    while frame is not None:
        if frame.f_code.co_filename.startswith(critical):
            return True
        frame = frame.f_back
    return False


#: SIGALRM's handler before a deferred signal borrowed it (restored when the signal is raised or main returns).
_alarm_handler: list = []
#: The exception a deferred signal raises (Terminated for SIGTERM, KeyboardInterrupt for Ctrl-C).
_pending: list = []
#: Set by the first Ctrl-C: a second one exits at once.
_interrupted: list = []


def _raise_when_safe(signum, frame) -> None:
    """Raise the pending exception now, or, while the main thread is inside storage code, 5 ms later (SIGALRM)."""
    if hasattr(signal, "setitimer") and _in_storage_code(frame):
        _arm_alarm(0.005)
        return
    _restore_alarm()
    interrupt.clear()  # the training loop did not take the request in time: raised here instead
    exc = _pending.pop() if _pending else Terminated
    _pending.clear()
    raise exc


def _arm_alarm(seconds: float) -> None:
    if not _alarm_handler:
        _alarm_handler.append(signal.signal(signal.SIGALRM, _raise_when_safe))
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _restore_alarm() -> None:
    if _alarm_handler:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, _alarm_handler.pop())


def _taken_up() -> None:
    """The training loop took the stop request: it raises the exception itself, after its checkpoint."""
    _restore_alarm()
    _pending.clear()


def _stop(exc: type[BaseException], signum, frame) -> None:
    """Ask a training loop to stop at its next iteration (raised anyway after ``STOP_WAIT`` s), else raise when safe."""
    if interrupt.request(exc, on_honour=_taken_up):
        if hasattr(signal, "setitimer"):
            _arm_alarm(STOP_WAIT)
        return
    _raise_when_safe(signum, frame)


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    _pending[:] = [Terminated]
    interrupt.clear()  # SIGTERM's exit status wins over a waiting SIGUSR1 or Ctrl-C
    _stop(Terminated, signum, frame)


def _on_sigusr1(signum, frame) -> None:
    if _pending or interrupt.pending():  # a stop is already on its way
        return
    _pending.append(Preempted)
    _stop(Preempted, signum, frame)


def _on_sigint(signum, frame) -> None:
    if _interrupted:
        print("interrupted again: exiting at once (the unit in progress is taken over once its worker is found "
              "gone)", file=sys.stderr, flush=True)
        os._exit(130)
    _interrupted.append(True)
    if not _pending:  # a SIGTERM already waiting keeps its exit status
        _pending.append(KeyboardInterrupt)
        _stop(KeyboardInterrupt, signum, frame)
        return
    _raise_when_safe(signum, frame)


class UsageError(BenchmarkError):
    """A malformed command line (reported like every other bad input: one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are ``UsageError`` (one line ``error: ...``, no usage block), not an exit."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dml-bench", description="Deep metric learning benchmark: the reality-check protocol "
        "(search over class-disjoint folds, repeats, separated and concatenated test evaluation).")
    sub = parser.add_subparsers(dest="command", required=True)
    lm = sub.add_parser("list-methods", help="every registered method with its description and search space")
    lm.add_argument("pattern", nargs="?", help="only the methods whose name or display name contains this text "
                                               "(or matches this glob, e.g. 'proxy*')")
    lm.add_argument("--name", help="the same filter as PATTERN")
    lm.add_argument("--json", action="store_true", help="print a JSON list (name, display_name, source, summary, "
                                                        "description, search_space, defaults, fixed, flags)")
    run = sub.add_parser("run", help="run (or resume, or join as a worker) a leaderboard")
    _add_run_args(run)
    plan = sub.add_parser("plan", help="what a run will cost before it runs: units, fold trainings, iterations "
                                       "and, with --measure, the wall time on this machine")
    plan.add_argument("source", nargs="?", help="a YAML config file or a preset name (or give --preset/--config)")
    _add_run_args(plan, required=False)
    plan.add_argument("--measure", action="store_true",
                      help="time a few training iterations and a validation of every method and dataset here, "
                           "and a test evaluation per dataset, to estimate the wall time")
    prep = sub.add_parser("prepare", help="what a run needs before it trains, now: datasets generated or checked, "
                                          "the small CNN pretrained (resumable), trunk outputs cached (run does "
                                          "this itself; prepare is optional)")
    _add_config_args(prep)
    prep.add_argument("--write-manifest", metavar="FILE",
                      help="also record the split manifest of these datasets (per-class image counts and checksums of "
                           "the sorted file lists) in FILE, for others to check their copies against "
                           "(datasets[].split_manifest)")
    ev = sub.add_parser("evaluate", help="without training: re-score a run's saved embeddings (RUN_DIR), adding "
                                         "new metrics to its results and tables, or evaluate a trunk as it is "
                                         "(--config/--preset: the raw-trunk row alone) through the test protocol")
    ev.add_argument("run_dir", nargs="?", help="a run folder written by dml-bench run --save embeddings (or both)")
    ev.add_argument("--metrics", help="with RUN_DIR: comma-separated metrics to compute from the saved embeddings, "
                                      "e.g. nmi,ami,f1,recall_at_16 (default: the run's own, to check them); "
                                      "values results.csv has are compared, new ones added")
    _add_config_args(ev, required=False)
    ev.add_argument("--out", help="with --config/--preset: the output folder "
                                  "(default: results/<config name>-raw-trunk)")
    ev.add_argument("--save", choices=list(SAVE_MODES), help="with --config/--preset: keep the raw trunk's test "
                                                             "embeddings (embeddings or both)")
    ev.add_argument("--no-plots", action="store_true", help="skip the plots")
    sbm = sub.add_parser("submit", help="start a run's workers on a batch scheduler: SLURM, a job array of ordinary "
                                        "workers on a shared storage and run folder (see docs/tutorials/cluster.md)")
    sbm.add_argument("scheduler", choices=["slurm"], help="the batch scheduler")
    _add_run_args(sbm)
    sbm.add_argument("--tasks", type=int, required=True, help="array tasks: one worker each (--workers per task)")
    sbm.add_argument("--time", required=True, help="each task's time limit, as sbatch takes it (HH:MM:SS, D-HH:MM:SS, "
                                                   "minutes); the worker is signalled (SIGUSR1) before it ends")
    sbm.add_argument("--cpus-per-task", type=int, default=1, help="CPUs of each task (and its OMP_NUM_THREADS)")
    sbm.add_argument("--gpus-per-task", type=int, default=0, help="GPUs of each task (--gres=gpu:N)")
    sbm.add_argument("--partition", help="the SLURM partition (default: the cluster's)")
    sbm.add_argument("--extra", action="append", default=[], metavar="OPTIONS",
                     help="more sbatch options, written into the script, e.g. --extra '--account=lab --mem=16G' or "
                          "--extra=--exclusive (repeatable)")
    sbm.add_argument("--signal-before", type=int, metavar="SECONDS",
                     help="seconds before the time limit at which each worker is told to release its unit and "
                          "exit (default: 120, at most half the time limit)")
    sbm.add_argument("--dry-run", action="store_true", help="print the script and submit nothing")
    rep = sub.add_parser("report", help="tables (Markdown, text, LaTeX), significance, ranks, search diagnostics, "
                                        "cost, plots and report.html from a run folder's CSV files")
    rep.add_argument("run_dir", help="a run folder written by dml-bench run (results/<name>)")
    rep.add_argument("--format", default="markdown,text,latex",
                     help="comma-separated formats written to RUN_DIR/tables (markdown, text, latex); "
                          "the files written are named on the terminal")
    rep.add_argument("--compare", choices=["published"],
                     help="add the published numbers (a block of rows below ours, with our difference)")
    rep.add_argument("--no-plots", action="store_true", help="skip the plots")
    rep.add_argument("--jobs", type=int, default=1,
                     help="processes: 2 or more draw the plots in a second process while the first writes the "
                          "tables and statistics (run --workers N reports with N)")
    rep.add_argument("--print", dest="print_format", default=None,
                     choices=["markdown", "text", "latex"],
                     help="format of every table printed to the terminal (default: the first of --format)")
    rep.add_argument("--latex-width", default="column", choices=list(LATEX_WIDTHS),
                     help="LaTeX tables: 'column' (default) shrinks a table wider than \\linewidth to it, so it fits "
                          "a column of a two-column paper and the text of a one-column one; 'page' makes a table* "
                          "(spanning both columns) shrunk to the text width; 'none' keeps the natural width")
    exp = sub.add_parser("export", help="send a run folder's results to an experiment tracker: one MLflow run per "
                                        "method and dataset (parameters, per-repeat metrics, validation curves, "
                                        "tables as artifacts)")
    exp.add_argument("run_dir", help="a run folder written by dml-bench run (results/<name>)")
    exp.add_argument("--mlflow", required=True, metavar="URI",
                     help="MLflow tracking URI: sqlite:///mlflow.db, file:./mlruns, or a server http://host:5000 "
                          "(needs pip install 'dml-bench[mlflow]')")
    exp.add_argument("--experiment", help="the MLflow experiment (default: the run folder's name)")
    return parser


#: What each text flag expects, for the one line that refuses it empty.
TEXT_FLAGS = {"preset": "a preset name, e.g. smoke", "config": "a YAML config file",
              "out": "a run folder, or leave the flag out for results/<config name>",
              "methods": "comma-separated method names (see dml-bench list-methods)",
              "datasets": "comma-separated dataset names", "device": "auto, cpu, cuda or cuda:N",
              "storage": "an Optuna storage URL, or leave the flag out for a journal file in the run folder",
              "storage_file": "a file holding the storage URL", "time": "a time limit, e.g. 4:00:00",
              "partition": "a partition name, or leave the flag out for the cluster's default"}


def check_text_flags(args: argparse.Namespace) -> None:
    """A text flag given empty (``--methods ''``, ``--out ''``, ``--methods ,``) is refused, never ignored."""
    for flag, expected in TEXT_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        empty = not value.strip() or (flag in ("methods", "datasets") and not _names(value))
        if empty:
            raise UsageError(f"--{flag.replace('_', '-')} is empty (expected {expected})")


def _config_from_args(args: argparse.Namespace):
    from benchmark.protocol.run_config import load_run_config

    overrides = list(args.overrides)
    for flag, key in (("trials", "protocol.n_trials"), ("repeats", "protocol.n_repeats"),
                      ("folds", "protocol.n_folds"), ("device", "device"), ("seed", "seed"),
                      ("workers", "protocol.workers"), ("save", "protocol.save")):
        value = getattr(args, flag, None)  # prepare has no --trials, --repeats, --workers
        if value is not None:
            overrides.append(f"{key}={value}")
    storage = getattr(args, "storage", None)  # prepare has no --storage
    if getattr(args, "storage_file", None) is not None:
        from benchmark.protocol.storage_check import read_storage_file

        storage = read_storage_file(args.storage_file)
    return load_run_config(preset=args.preset, path=args.config, overrides=overrides,
                           methods=_names(args.methods), datasets=_names(args.datasets), storage=storage)


def _names(text: Optional[str]) -> Optional[list[str]]:
    """A comma-separated list of names (None when the flag was not given)."""
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def cmd_list_methods(args: argparse.Namespace) -> int:
    import json

    from benchmark.methods.describe import describe_methods, method_record, select_methods

    if args.pattern is not None and args.name is not None and args.pattern != args.name:
        raise UsageError("give the name filter once (PATTERN or --name)")
    specs = select_methods(args.name if args.name is not None else args.pattern)
    if args.json:
        print(json.dumps([method_record(spec) for spec in specs], indent=2, ensure_ascii=False))
    else:
        print(describe_methods(specs))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Everything before the first unit of work (see ``Workbench.prepare``); writes only to the cache, and to the
    ``--write-manifest`` file when given."""
    import time

    from benchmark.models.trunks import check_pretrained_weights
    from benchmark.protocol.preflight import check_device, check_precision
    from benchmark.protocol.split_record import check_manifest_target, write_split_manifest
    from benchmark.protocol.workbench import Workbench

    start = time.monotonic()
    cfg = _config_from_args(args)
    target = None if args.write_manifest is None else check_manifest_target(args.write_manifest)
    check_device(cfg.device)
    check_precision(cfg)
    check_pretrained_weights(cfg.model.trunk, pretrained=cfg.model.pretrained, weights=cfg.model.weights)
    bench = Workbench(cfg, progress=not args.no_progress)
    for line in bench.prepare():
        print(line, flush=True)
    for line in [] if target is None else write_split_manifest(bench, target):
        print(line, flush=True)
    print(f"prepared in {time.monotonic() - start:.0f} s: `dml-bench run` with this config starts training at once")
    return 0


def _config_and_run_dir(args: argparse.Namespace):
    """The checks ``run`` and ``submit`` share, before anything is written: the text flags, the resolved
    config, its run folder (usable, and not inside a dataset root); returns ``(cfg, run_dir)``."""
    from benchmark.protocol.preflight import check_output_dir, check_outside_datasets

    check_text_flags(args)
    cfg = _config_from_args(args)
    run_dir = Path(args.out) if args.out else RESULTS_DIR / cfg.name
    _set_run_dir(run_dir)
    check_output_dir(run_dir)
    check_outside_datasets(run_dir, cfg)
    return cfg, run_dir


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from benchmark.models.trunks import check_pretrained_weights
    from benchmark.protocol.leaderboard import run_leaderboard
    from benchmark.protocol.local_workers import plan_for
    from benchmark.protocol.preflight import check_device, check_precision
    from benchmark.protocol.run_dir import attach_log, prepare_run_dir
    from benchmark.protocol.storage_check import check_storage_url
    from benchmark.protocol.workbench import Workbench

    # Every check before anything is written: config keys, output folder, device, trunk weights, storage, datasets.
    cfg, run_dir = _config_and_run_dir(args)
    check_device(cfg.device)
    check_precision(cfg)
    check_pretrained_weights(cfg.model.trunk, pretrained=cfg.model.pretrained, weights=cfg.model.weights)
    if cfg.protocol.storage is not None:
        check_storage_url(cfg.protocol.storage)
    bench = Workbench(cfg, progress=not args.no_progress)
    bench.prepare()  # layouts, paths inside the root, each image once, readable headers; trunk; frozen caches
    prepare_run_dir(run_dir, cfg, list(argv), allow_config_change=args.allow_config_change)
    plan = plan_for(cfg)
    if plan.n > 1:
        code = _run_local_workers(cfg, run_dir, bench, plan, argv, progress=not args.no_progress)
        if code != 0:
            return code
    else:
        handler = attach_log(run_dir)
        try:
            stages = run_leaderboard(cfg, run_dir, progress=not args.no_progress,
                                     allow_config_change=args.allow_config_change, bench=bench)
        finally:
            logging.getLogger("benchmark").removeHandler(handler)
            handler.close()
        other = stages.finished_by
        if other is not None:  # several workers: the one that claimed the finished leaderboard prints the tables
            if not other["same_folder"] and not args.no_report:  # its own run folder (another --out or machine)
                _report(run_dir, formats=("markdown", "text", "latex"), compare=None, plots=True,
                        print_format="markdown", show=False)
            print(f"leaderboard finished by another worker ({other['worker']}); tables in "
                  f"{run_dir.resolve() / 'tables'}")
            return 0
    if args.no_report:
        return 0
    return _report(run_dir, formats=("markdown", "text", "latex"), compare=None, plots=True,
                   print_format="markdown", jobs=plan.n)  # the cores the workers had, for the report


def cmd_submit(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """A job array of ordinary workers of the run (see ``benchmark.protocol.slurm``)."""
    from benchmark.protocol import slurm
    from benchmark.protocol.run_dir import prepare_run_dir
    from benchmark.protocol.storage_check import check_storage_url

    cfg, run_dir = _config_and_run_dir(args)
    request = slurm.SlurmRequest(tasks=args.tasks, time=args.time, cpus_per_task=args.cpus_per_task,
                                 gpus_per_task=args.gpus_per_task, partition=args.partition,
                                 extra=tuple(args.extra), signal_before=args.signal_before)
    run_actions = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    job = slurm.plan_job(request=request, run_dir=run_dir, device=cfg.device, storage=cfg.protocol.storage,
                         storage_file=args.storage_file, workers=args.workers, job_name=run_dir.name,
                         run_args=slurm.worker_arguments(run_actions.choices["run"]._actions, args))
    if args.dry_run:
        print(f"# {job.slurm_dir / 'submit-<jobid>.sbatch'} (dry run: nothing written or submitted)")
        print(job.script, end="")
        return 0
    job_id, script = slurm.submit(
        job, check_storage_url=lambda: check_storage_url(cfg.protocol.storage),
        prepare=lambda: prepare_run_dir(run_dir, cfg, list(argv), allow_config_change=args.allow_config_change))
    print("\n".join(slurm.follow_lines(job, job_id, script)))
    return 0


def _run_local_workers(cfg, run_dir: Path, bench, plan, argv: Sequence[str], *, progress: bool) -> int:
    """``--workers N``: N worker processes on the run's storage, one progress bar, the worst status."""
    from benchmark.protocol.leaderboard import storage_progress
    from benchmark.protocol.local_workers import run_workers

    print(f"starting {plan.describe()} on {run_dir} (logs: {run_dir / 'workers'})", file=sys.stderr)
    bar = storage_progress(cfg, run_dir, bench, enabled=progress)  # opens the storage before any worker writes
    try:
        code = run_workers(argv, plan, run_dir, progress=bar.update)
    finally:
        bar.close()
    if code == 0:
        bar.check_complete()
    return code


def _report(run_dir: Path, **kwargs) -> int:
    """Write and print the report (see :func:`_write_report`); the libraries' warnings, caught while it
    runs, are printed once each at the end with their count (not once per occurrence)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every occurrence recorded, then counted
        for hidden in (DeprecationWarning, PendingDeprecationWarning):  # hidden by Python's defaults: stay so
            warnings.filterwarnings("ignore", category=hidden)
        try:
            return _write_report(run_dir, **kwargs)
        finally:
            _summarise_warnings(caught)


def _summarise_warnings(caught: list) -> None:
    counts: dict[tuple[str, str], int] = {}
    for w in caught:
        key = (w.category.__name__, " ".join(str(w.message).split()))
        counts[key] = counts.get(key, 0) + 1
    for (category, message), n in counts.items():
        print(f"warning ({category}{f', {n} times' if n > 1 else ''}): {message}", file=sys.stderr)


def _write_report(run_dir: Path, *, formats, compare, plots: bool, print_format: str,
                  latex_width: str = "column", show: bool = True, jobs: int = 1) -> int:
    from benchmark.reporting import aggregate_run, write_reports
    from benchmark.reporting.cross_modal_tables import write_cross_modal_tables
    from benchmark.reporting.plots_process import plots_drawer
    from benchmark.reporting.run_files import check_run_files
    from benchmark.reporting.run_report import write_run_report
    from benchmark.reporting.tables import EXTENSIONS, comparison_note, dataset_comparison, dataset_tables

    _set_run_dir(run_dir)
    results = run_dir / "results.csv"
    if not results.is_file():
        raise BenchmarkError(f"{results} does not exist (is {run_dir} a run folder?)")
    check_run_files(run_dir)  # every file it reads, before anything is written
    drawer = plots_drawer(run_dir, jobs) if plots else None  # with jobs > 1, drawn alongside what follows
    try:
        agg = aggregate_run(run_dir)  # once: tables, cross-modal tables, statistics and printout share it
        written = write_reports(run_dir, formats=tuple(formats), compare=compare, latex_width=latex_width, agg=agg)
        # paired (cross-modal) datasets: both directions side by side
        written += write_cross_modal_tables(agg, run_dir / "tables", tuple(formats), latex_width)
        # significance, ranks, search diagnostics, cost, power, CD diagrams and report.html
        stats_written, findings = write_run_report(run_dir, plots=plots, agg=agg,
                                                   plots_ready=drawer.result if drawer else None)
    except BaseException:
        if drawer is not None:
            drawer.cancel()
        raise
    written += stats_written
    if not show:
        return 0
    for dataset in map(str, agg["dataset"].unique()):
        note = comparison_note(agg, dataset) if compare else None
        if note:
            print(f"\nnote: {note}")
        tables = dataset_tables(agg, dataset, print_format, compare=dataset_comparison(agg, dataset, compare),
                                latex_width=latex_width)
        for name, text in tables:
            if print_format == "latex":
                print(f"\n% {run_dir / 'tables' / name}\n{text}", end="")
            else:
                print(f"\n{text}", end="")
    print("\nFindings (Welch t-tests over repeats, Holm-corrected, alpha = 0.05):")
    for line in findings:
        print(f"  - {line}")
    print()
    for fmt in formats:  # the tables' files, one line per format
        files = [p for p in written if p.parent == run_dir / "tables" and p.suffix == EXTENSIONS[fmt]]
        print(f"{fmt}: {', '.join(map(str, files))}")
    print(f"wrote {len(written)} files under {run_dir} (open {run_dir / 'report.html'})")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Counts (and with --measure, timings and a wall-time estimate) of a run, before it runs."""
    from benchmark.config import CONFIG_DIR
    from benchmark.protocol.local_workers import plan_for
    from benchmark.protocol.plan import measure, plan_run, render_plan

    if args.source is not None:
        if args.preset or args.config:
            raise UsageError("give the config once: a positional CONFIG, or --preset/--config")
        is_file = Path(args.source).is_file() or not (CONFIG_DIR / f"{args.source}.yaml").is_file()
        args.config, args.preset = (args.source, None) if is_file else (None, args.source)
    elif not (args.preset or args.config):
        raise UsageError("plan needs a config: dml-bench plan CONFIG (a YAML file or a preset name)")
    cfg = _config_from_args(args)
    run_dir = Path(args.out) if args.out else RESULTS_DIR / cfg.name
    plan = plan_run(cfg, previous_run=run_dir)
    workers = plan_for(cfg)
    if args.measure:
        from benchmark.protocol.preflight import check_device

        check_device(cfg.device)
        measure(cfg, plan, progress=not args.no_progress, say=lambda line: print(line, file=sys.stderr))
    gpus = len({g for g in workers.gpus if g is not None})
    print(render_plan(plan, workers=workers.n, gpus=gpus))
    return 0


def _set_run_dir(run_dir: Path) -> None:
    global _run_dir
    _run_dir = run_dir


def cmd_report(args: argparse.Namespace) -> int:
    formats = list(dict.fromkeys(f.strip() for f in args.format.split(",") if f.strip()))
    if not formats:
        raise UsageError("--format is empty (expected comma-separated formats: markdown, text, latex)")
    if not args.run_dir.strip():
        raise UsageError("the run folder is empty (expected dml-bench report RUN_DIR)")
    bad = sorted(set(formats) - {"markdown", "text", "latex"})
    if bad:
        raise BenchmarkError(f"unknown format {bad[0]!r} (expected markdown, text or latex)")
    if not formats:
        raise BenchmarkError("--format names no format (expected some of markdown, text, latex)")
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: expected a number of processes, 1 or more")
    run_dir = Path(args.run_dir)
    compare = True if args.compare == "published" else None  # each dataset's published table
    return _report(run_dir, formats=formats, compare=compare, plots=not args.no_plots,
                   print_format=args.print_format or formats[0], latex_width=args.latex_width, jobs=args.jobs)


def cmd_export(args: argparse.Namespace) -> int:
    from benchmark.reporting.mlflow_export import export_mlflow

    if not args.run_dir.strip():
        raise UsageError("the run folder is empty (expected dml-bench export RUN_DIR --mlflow URI)")
    for line in export_mlflow(Path(args.run_dir), args.mlflow, experiment=args.experiment):
        print(line, flush=True)
    return 0


def cmd_evaluate(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Re-score RUN_DIR's saved embeddings, or evaluate the config's trunk as it is; then its report."""
    check_text_flags(args)
    if args.run_dir is not None:
        if args.preset or args.config or args.out or args.save:
            raise UsageError("give a run folder (RUN_DIR) or a config (--config/--preset, --out, --save), not both")
        from benchmark.protocol.reevaluate import reevaluate_run

        run_dir = Path(args.run_dir)
        _set_run_dir(run_dir)
        metrics = _names(args.metrics) if args.metrics is not None else None
        if args.metrics is not None and not metrics:
            raise UsageError("--metrics is empty (expected comma-separated metric names, e.g. nmi,ami,f1)")
        for line in reevaluate_run(run_dir, metrics).lines():
            print(line, file=sys.stderr)
    else:
        if not (args.preset or args.config):
            raise UsageError("evaluate needs a run folder (dml-bench evaluate RUN_DIR) or a config (--config/--preset)")
        if args.metrics is not None:
            raise UsageError("--metrics re-scores a run folder's saved embeddings; with --config/--preset the "
                             "config's evaluation keys choose the metrics")
        run_dir = _evaluate_trunk(args, argv)
    return _report(run_dir, formats=("markdown", "text", "latex"), compare=None, plots=not args.no_plots,
                   print_format="markdown")


def _evaluate_trunk(args: argparse.Namespace, argv: Sequence[str]) -> Path:
    from benchmark.models.trunks import check_pretrained_weights
    from benchmark.protocol.preflight import check_device, check_output_dir
    from benchmark.protocol.run_dir import prepare_run_dir
    from benchmark.protocol.trunk_only import evaluate_trunk
    from benchmark.protocol.workbench import Workbench

    cfg = _config_from_args(args)
    run_dir = Path(args.out) if args.out else RESULTS_DIR / f"{cfg.name}-raw-trunk"
    _set_run_dir(run_dir)
    check_output_dir(run_dir)
    check_device(cfg.device)
    check_pretrained_weights(cfg.model.trunk, pretrained=cfg.model.pretrained, weights=cfg.model.weights)
    bench = Workbench(cfg, progress=not args.no_progress)
    bench.prepare()
    prepare_run_dir(run_dir, cfg, list(argv), allow_config_change=False)
    for line in evaluate_trunk(cfg, run_dir, bench):
        print(line, file=sys.stderr)
    return run_dir


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    previous = _handle_signals(_on_sigterm, _on_sigint)
    try:
        args = build_parser().parse_args(argv)
        if args.command == "list-methods":
            return cmd_list_methods(args)
        if args.command == "run":
            return cmd_run(args, argv)
        if args.command == "plan":
            return cmd_plan(args)
        if args.command == "prepare":
            return cmd_prepare(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "evaluate":
            return cmd_evaluate(args, argv)
        if args.command == "submit":
            return cmd_submit(args, argv)
        return cmd_report(args)
    except BenchmarkError as exc:
        # one line whatever the message quotes (a file name may hold a line break)
        print("error: " + one_line(redact_text(str(exc))), file=sys.stderr)
        return exc.exit_status
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        error = DiskFullError(exc.filename or _run_dir or "the output folder")  # a write outside ``benchmark.io``
        print("error: " + one_line(str(error)), file=sys.stderr)
        return error.exit_status
    except (Terminated, Preempted) as exc:
        print(f"stopped ({exc.signal_name}): the unit in progress was released to the other workers and resumes "
              f"from its checkpoint; re-run the same command to go on", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted: the unit in progress was released to the other workers and resumes from its "
              "checkpoint; re-run the same command to go on", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            _restore_alarm()
            _pending.clear()
            interrupt.clear()
            _handle_signals(*previous)


def _handle_signals(on_term, on_int, on_usr1=_on_sigusr1):
    """Install the SIGTERM, SIGINT and SIGUSR1 handlers and return the ones they replace; None, and nothing done,
    off the main thread (Python installs signal handlers only there: an in-process caller's own thread) or where
    a handler was not installed from Python."""
    if threading.current_thread() is not threading.main_thread() or on_term is None or on_int is None \
            or on_usr1 is None:
        return None
    _interrupted.clear()
    return (signal.signal(signal.SIGTERM, on_term), signal.signal(signal.SIGINT, on_int),
            signal.signal(signal.SIGUSR1, on_usr1))


def one_line(text: str) -> str:
    """``text`` on one line: line breaks (a file name may hold one) shown as ``\\n``."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def entry_point() -> None:
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into head & co.
        sys.exit(0)
    except Exception:  # noqa: BLE001 - a bug: its traceback, with any storage password masked
        sys.stderr.write(redact_text(traceback.format_exc()))
        sys.exit(1)
