"""Several worker processes on this machine for one run: ``dml-bench run --workers N|auto``.

The parent starts N ordinary workers of the same command on the run's storage (the journal file in
the run folder, or the ``--storage`` database), each claiming units exactly once as any worker does.
It splits the cores between them (``OMP_NUM_THREADS``, used when ``training.threads`` is 0), places
them on the visible GPUs round-robin (``CUDA_VISIBLE_DEVICES``; several workers may share one GPU),
writes each worker's output to ``<run>/workers/worker-<i>.log``, shows one progress bar for the
whole run from the storage, and stops every worker cleanly (SIGTERM, then SIGKILL after
``STOP_GRACE`` seconds) on Ctrl-C or as soon as one fails. Its exit status is the worst of theirs.

``auto``: on a GPU host, one worker per GPU (two in the frozen regime, whose small embedders leave a
GPU mostly idle), at most one per core; on a CPU, one worker per core with one thread each (the
harness's units are small models, for which processes scale and a shared thread pool does not).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from benchmark.config import BenchmarkConfig

#: Seconds a worker has to record its unit and exit after SIGTERM before it is killed.
STOP_GRACE = 30.0
#: Seconds between two looks at the workers and the storage.
POLL = 1.0
LOG_DIR = "workers"


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers, the CPU threads of each, and the GPU (index) of each (None: no GPU)."""

    n: int
    threads: int
    gpus: tuple[Optional[int], ...]

    def describe(self) -> str:
        where = "" if not any(g is not None for g in self.gpus) else \
            f", GPUs {', '.join(str(g) for g in self.gpus)}"
        return f"{self.n} workers, {self.threads} CPU thread{'s' if self.threads > 1 else ''} each{where}"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def visible_gpus(device: str) -> int:
    """GPUs the workers may be spread over: every visible one for ``auto``/``cuda``, none otherwise."""
    if device not in ("auto", "cuda"):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan_workers(setting: int | str, *, device: str, frozen: bool, cores: Optional[int] = None,
                 gpus: Optional[int] = None) -> WorkerPlan:
    """The worker plan for ``protocol.workers`` (a number or ``auto``) on this machine."""
    cores = usable_cores() if cores is None else cores
    gpus = visible_gpus(device) if gpus is None else gpus
    if setting == "auto":
        n = min(cores, gpus * (2 if frozen else 1)) if gpus else cores
    else:
        n = int(setting)
    n = max(1, n)
    return WorkerPlan(n=n, threads=max(1, cores // n),
                      gpus=tuple(i % gpus if gpus else None for i in range(n)))


def plan_for(cfg: BenchmarkConfig) -> WorkerPlan:
    """The worker plan of a run's config (``protocol.workers``, its device, whether a dataset trains frozen)."""
    return plan_workers(cfg.protocol.workers, device=cfg.device,
                        frozen=any(cfg.is_frozen(d) for d in cfg.datasets))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this worker if the parent dies (PR_SET_PDEATHSIG), so no worker outlives it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def child_command(argv: Sequence[str]) -> list[str]:
    """The worker's command line: the same ``run`` arguments, as one worker, no bar, no report."""
    return [sys.executable, "-c", "from benchmark.cli import entry_point; entry_point()", *argv,
            "--workers", "1", "--no-progress", "--no-report"]


def start_workers(argv: Sequence[str], plan: WorkerPlan, run_dir: Path) -> list[tuple[subprocess.Popen, Path]]:
    """Start the plan's workers; each in a session of its own, so that a terminal's Ctrl-C reaches only
    the parent, which stops them one signal at a time."""
    log_dir = run_dir / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(plan.n):
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = env.get(var) or str(plan.threads)  # the user's own setting wins
        if plan.gpus[i] is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(plan.gpus[i])
        log_path = log_dir / f"worker-{i}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(child_command(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True,
                                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        procs.append((proc, log_path))
    return procs


def stop_workers(procs: list[tuple[subprocess.Popen, Path]], sig: int = signal.SIGTERM,
                 grace: float = STOP_GRACE) -> None:
    """Signal every live worker once, wait ``grace`` seconds for them to record their unit, then kill."""
    for proc, _ in procs:
        if proc.poll() is None:
            proc.send_signal(sig)
    deadline = time.monotonic() + grace
    for proc, _ in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def worst_status(codes: Sequence[int]) -> int:
    """The exit status of the whole run: 0 when every worker succeeded, else the first failure's (a
    signal's death as 128 + its number)."""
    for code in codes:
        if code != 0:
            return 128 - code if code < 0 else code
    return 0


def run_workers(argv: Sequence[str], plan: WorkerPlan, run_dir: Path, *, progress=None) -> int:
    """Run the plan's workers to the end; ``progress()`` (optional) is called every ``POLL`` seconds.

    Returns the worst exit status. A worker that fails stops the others; Ctrl-C (or SIGTERM, which the
    CLI raises as a KeyboardInterrupt) to the parent sends the same signal to every worker and re-raises
    once they have exited.
    """
    procs = start_workers(argv, plan, run_dir)
    try:
        while True:
            codes = [p.poll() for p, _ in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                stop_workers(procs)
                path = procs[i][1]
                print(f"error: worker {i} exited with status {code} ({last_line(path) or 'no output'}); "
                      f"the other workers were stopped; its log: {path}", file=sys.stderr)
                return worst_status([code] + [p.returncode for p, _ in procs])
            if all(c == 0 for c in codes):
                return 0
            if progress is not None:
                progress()
            time.sleep(POLL)
    except KeyboardInterrupt as exc:  # Ctrl-C, or the CLI's SIGTERM / SIGUSR1: the workers get the same signal
        stop_workers(procs, getattr(exc, "signum", signal.SIGINT))
        raise
