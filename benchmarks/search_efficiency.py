"""How much compute the hyperparameter search needs: the protocol's 50-trial search against pruning and random search.

    python benchmarks/search_efficiency.py [--jobs 2] [--runs runs.jsonl] [--csv curves.csv] [--quick]

On the quick preset's frozen-trunk regime (built-in dataset, 4 class-disjoint folds, the embedder
trained on cached trunk outputs), for every method and seed, four strategies search with the
harness's own ``SearchStage`` (each on its own journal storage, one worker, so every run is
reproducible):

* ``a``: TPE, 50 trials, no pruning: the protocol;
* ``b``: TPE + median pruning at fold ends (``protocol.pruner: median``), with a compute budget
  (``protocol.budget_iterations``) of 1/3 of the training iterations ``a`` spent on the same method and seed;
* ``c``: TPE + Hyperband at every validation (``protocol.pruner: hyperband``), the same 1/3 budget;
* ``d``: random search, 50 trials, no pruning.

Each run gives its best validation MAP@R so far (COMPLETE trials only) against its cumulative training
iterations. The table says, per strategy, in how many runs it came within 1 point (0.01 MAP@R) of
``a``'s final best, the compute it needed to get there as a share of ``a``'s whole search (median over
runs; a run that never gets there counts as infinite), the same for 0.25 point (where the method's
defaults, every search's first trial, already come within 1 point, the looser figure cannot tell the
strategies apart), and the test MAP@R (concatenated, one retraining with the harness's ``RepeatStage``)
of the configuration it picked. A strategy *reaches a's best at a third of the cost* when its median
share for 1 point is at most 1/3 (see ``winner``). ``--quick`` is a smoke run (two methods, one seed,
6 trials, 2 epochs per fold).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the harness is this checkout's
    sys.path.insert(0, str(ROOT))

METHODS = ("contrastive", "multi_similarity", "snr", "ntxent")
SEEDS = (0, 1, 2)
TRIALS = 50
#: The share of ``a``'s compute that ``b`` and ``c`` get, and the share the issue asks for.
FRACTION = 1 / 3
#: "Within 1 point" of ``a``'s final best validation MAP@R.
TOLERANCE = 0.01
#: The quick preset with shorter folds, so that 50-trial searches fit: validation every 20 iterations, at most
#: 80 per fold (320 per trial), early stopping after 40 without a better validation, and a learning rate
#: (1e-3) at which these losses peak within that (at the preset's 2e-4 they need 120-200 iterations).
REGIME = ("training.iterations_per_epoch=20", "training.max_epochs=4", "training.val_interval=1",
          "training.patience=2", "training.lr_embedder=0.001")


@dataclass(frozen=True)
class Strategy:
    key: str
    label: str
    sampler: str
    pruner: str
    #: None: ``n_trials`` trials; else a budget of this share of ``a``'s iterations (trials capped at 3 x n_trials).
    fraction: float | None


STRATEGIES = (
    Strategy("a", "TPE, 50 trials, no pruning (protocol)", "tpe", "none", None),
    Strategy("b", "TPE + median pruning at fold ends, 1/3 budget", "tpe", "median", FRACTION),
    Strategy("c", "TPE + Hyperband at validations, 1/3 budget", "tpe", "hyperband", FRACTION),
    Strategy("d", "random search, 50 trials", "random", "none", None),
)
_BY_KEY = {s.key: s for s in STRATEGIES}


@dataclass(frozen=True)
class Job:
    method: str
    seed: int
    strategy: str
    trials: int
    budget: int | None
    overrides: tuple
    folder: str


def job_config(job: Job):
    from benchmark.protocol.run_config import load_run_config

    s = _BY_KEY[job.strategy]
    sets = [f"methods=[{job.method}]", f"seed={job.seed}", f"protocol.n_trials={job.trials}",
            f"protocol.n_startup_trials={min(10, max(1, job.trials // 5))}", "protocol.n_repeats=1",
            f"protocol.sampler={s.sampler}", f"protocol.pruner={s.pruner}",
            f"protocol.budget_iterations={'null' if job.budget is None else job.budget}", *REGIME, *job.overrides]
    return load_run_config(preset="quick", overrides=sets)


_BENCHES: dict = {}


def _bench(cfg):
    """A Workbench for ``cfg``, sharing the prepared dataset of an earlier one with the same data settings.

    Strategies differ only in ``protocol`` keys the dataset does not depend on (sampler, pruner, trials,
    budget), so the dataset and its cached trunk outputs are prepared once per seed and process.
    """
    from benchmark.protocol.workbench import Workbench

    key = (cfg.seed, repr(cfg.datasets), repr(cfg.training), repr(cfg.frozen), repr(cfg.model), cfg.protocol.n_folds)
    if key not in _BENCHES:
        _BENCHES[key] = Workbench(cfg, progress=False)
    bench = copy.copy(_BENCHES[key])
    bench.cfg = cfg
    return bench


def run_job(job: Job) -> dict:
    """One search (and one retraining of its pick) through the harness; its curve and figures."""
    import optuna
    from optuna.trial import TrialState

    from benchmark.protocol import budget, storage
    from benchmark.protocol.units import BLOCKED, DONE, RepeatStage, SearchStage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    cfg = job_config(job)
    bench = _bench(cfg)
    dcfg = cfg.datasets[0]
    store = storage.create_storage(None, Path(job.folder))
    search = SearchStage(bench, store, dcfg, job.method)
    repeats = RepeatStage(bench, store, dcfg, job.method, search)
    for stage in (search, repeats):
        while (status := stage.step()) != DONE:
            if status == BLOCKED:
                raise RuntimeError(f"{job}: blocked with a single worker")
    trials = sorted(search.trials(TrialState.COMPLETE, TrialState.PRUNED), key=lambda t: t.number)
    curve, used, best = [], 0, -math.inf
    for t in trials:
        used += budget.usage(t)
        if t.state == TrialState.COMPLETE:
            best = max(best, t.value)
        curve.append((used, best))
    repeat = next(iter(repeats.completed_units().values()))
    return dict(method=job.method, seed=job.seed, strategy=job.strategy, curve=curve, spent=used, best=best,
                complete=sum(t.state == TrialState.COMPLETE for t in trials),
                pruned=sum(t.state == TrialState.PRUNED for t in trials), params=search.best_params(),
                test=repeat.user_attrs["test"]["concatenated"]["map_at_r"], seconds=time.perf_counter() - start)


def compute_to_reach(curve: list[tuple[int, float]], target: float) -> float:
    """The cumulative iterations at which the best so far first reaches ``target`` (inf if it never does)."""
    for used, best in curve:
        if best >= target:
            return float(used)
    return math.inf


def shares(runs: list[dict], strategy: str, tolerance: float) -> list[float]:
    """Per (method, seed): the iterations ``strategy`` needed to come within ``tolerance`` of a's final best, over
    a's whole spending (inf where it never did)."""
    base = {(r["method"], r["seed"]): r for r in runs if r["strategy"] == "a"}
    return [compute_to_reach(r["curve"], base[(r["method"], r["seed"])]["best"] - tolerance)
            / base[(r["method"], r["seed"])]["spent"]
            for r in runs if r["strategy"] == strategy and (r["method"], r["seed"]) in base]


def summarise(runs: list[dict], *, tolerance: float = TOLERANCE, fraction: float = FRACTION) -> list[dict]:
    """One row per strategy: runs within ``tolerance`` (and a quarter of it) of a's final best and the compute
    shares that took, what it spent, its trials, its final best and the test MAP@R of its pick (means over runs)."""
    base = {(r["method"], r["seed"]): r for r in runs if r["strategy"] == "a"}
    rows = []
    for s in STRATEGIES:
        mine = [r for r in runs if r["strategy"] == s.key and (r["method"], r["seed"]) in base]
        if not mine:
            continue
        near, close = shares(runs, s.key, tolerance), shares(runs, s.key, tolerance / 4)
        rows.append(dict(strategy=s.key, label=s.label, runs=len(mine),
                         reached=sum(math.isfinite(x) for x in near), within=sum(x <= fraction for x in near),
                         median_share=statistics.median(near), median_share_close=statistics.median(close),
                         spent_share=statistics.mean(r["spent"] / base[(r["method"], r["seed"])]["spent"]
                                                     for r in mine),
                         complete=statistics.mean(r["complete"] for r in mine),
                         pruned=statistics.mean(r["pruned"] for r in mine),
                         best=statistics.mean(r["best"] for r in mine),
                         test=statistics.mean(r["test"] for r in mine)))
    return rows


def winner(rows: list[dict], fraction: float = FRACTION) -> str | None:
    """The pruning strategy (b or c) that reaches a's best within 1 point at <= ``fraction`` of a's compute
    (median over runs); if both do, the one that comes within a quarter point sooner (then: the better test
    MAP@R). None if neither does."""
    fit = [r for r in rows if r["strategy"] in ("b", "c") and r["median_share"] <= fraction]
    return min(fit, key=lambda r: (r["median_share_close"], -r["test"]))["strategy"] if fit else None


def _share(x: float) -> str:
    return "never" if not math.isfinite(x) else f"{x:.2f}"


def table(rows: list[dict]) -> str:
    lines = ["| strategy | within 1 pt of (a)'s best | ... at ≤ 1/3 of (a)'s iterations | iterations to within 1 pt "
             "/ (a)'s (median) | ... to within 0.25 pt | iterations spent / (a)'s | trials: complete + pruned | "
             "best val MAP@R | test MAP@R of the pick |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| ({r['strategy']}) {r['label']} | {r['reached']}/{r['runs']} | {r['within']}/{r['runs']} | "
                     f"{_share(r['median_share'])} | {_share(r['median_share_close'])} | {r['spent_share']:.2f} | "
                     f"{r['complete']:.1f} + {r['pruned']:.1f} | {100 * r['best']:.2f} | {100 * r['test']:.2f} |")
    return "\n".join(lines)


def per_method_table(runs: list[dict]) -> str:
    """Test MAP@R (%) of each strategy's pick per method, mean over seeds."""
    methods = list(dict.fromkeys(r["method"] for r in runs))
    keys = [s.key for s in STRATEGIES if any(r["strategy"] == s.key for r in runs)]
    lines = ["| method | " + " | ".join(f"({k}) test" for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for m in methods:
        cells = []
        for k in keys:
            values = [r["test"] for r in runs if r["method"] == m and r["strategy"] == k]
            cells.append(f"{100 * statistics.mean(values):.2f}" if values else "")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_all(methods, seeds, trials: int, overrides: tuple, jobs: int, folder: Path, log=print,
            known: dict | None = None, record=None) -> list[dict]:
    """Every strategy for every (method, seed); b and c start once a's run on the same pair has finished.

    ``known`` maps (method, seed, strategy) to runs recorded earlier (they are not run again); ``record(run)``
    is called with every run as it finishes.
    """
    known = dict(known or {})
    runs: list[dict] = []
    queue = [Job(m, s, k, trials, None, overrides, str(folder / f"{m}-{s}-{k}"))
             for k in ("a", "d") for s in seeds for m in methods]

    def finished(job: Job, run: dict, *, new: bool = True) -> list[Job]:
        runs.append(run)
        if new and record is not None:
            record(run)
        log(f"  {job.method} seed {job.seed} ({job.strategy}): best {run['best']:.4f} after {run['spent']} iterations, "
            f"{run['complete']} complete + {run['pruned']} pruned, test {run['test']:.4f}, {run['seconds']:.0f} s"
            + ("" if new else " (recorded earlier)"))
        if job.strategy != "a":
            return []
        return [Job(job.method, job.seed, k, 3 * trials, _budget(run["spent"], _BY_KEY[k].fraction, job), overrides,
                    str(folder / f"{job.method}-{job.seed}-{k}")) for k in ("b", "c")]

    def to_run(jobs_: list[Job]) -> list[Job]:
        """The jobs not recorded yet; the recorded ones are counted now (with their follow-ups)."""
        out = []
        while jobs_:
            job = jobs_.pop(0)
            earlier = known.get((job.method, job.seed, job.strategy))
            if earlier is None:
                out.append(job)
            else:
                jobs_ += finished(job, earlier, new=False)
        return out

    queue = to_run(queue)
    if jobs <= 1:  # in this process, one after the other
        while queue:
            job = queue.pop(0)
            queue += to_run(finished(job, run_job(job)))
        return runs
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(run_job, j): j for j in queue}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                for j in to_run(finished(job, future.result())):
                    pending[pool.submit(run_job, j)] = j
    return runs


def load_runs(path: Path, trials: int, overrides: tuple) -> dict:
    """Runs recorded in ``path`` (JSON lines) by a run with the same trials, regime and overrides."""
    if not path.is_file():
        return {}
    setting = {"trials": trials, "overrides": list(overrides), "regime": list(REGIME)}
    out = {}
    for line in path.read_text().splitlines():
        run = json.loads(line)
        if run.get("setting") == setting:
            out[(run["method"], run["seed"], run["strategy"])] = run
    return out


def _budget(spent: int, fraction: float, job: Job) -> int:
    """``fraction`` of ``spent``, at least one whole trial (the config's lower bound)."""
    from benchmark.protocol.fidelity import trial_iterations

    cfg = job_config(job)
    return max(math.ceil(fraction * spent), trial_iterations(cfg.protocol.n_folds, cfg.training_for(cfg.datasets[0])))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--trials", type=int, default=TRIALS)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="searches run at once")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 methods, 1 seed, 6 trials, 2 epochs per fold")
    p.add_argument("--csv", help="write every run's curve (cumulative iterations, best so far) here")
    p.add_argument("--runs", help="JSON lines file: every finished run is appended; runs already in it (same "
                                  "trials and settings) are not run again, so an interrupted benchmark resumes")
    args = p.parse_args(argv)
    methods, seeds = args.methods.split(","), [int(s) for s in args.seeds.split(",")]
    overrides: tuple = ()
    if args.quick:
        methods, seeds, args.trials = methods[:2], seeds[:1], 6
        overrides = ("training.max_epochs=2", "training.patience=1")
    print(f"search efficiency: {len(methods)} methods x {len(seeds)} seeds x {len(STRATEGIES)} strategies, "
          f"{args.trials} trials, {args.jobs} jobs, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
          flush=True)
    start = time.perf_counter()
    known, record = {}, None
    if args.runs:
        path = Path(args.runs)
        known = load_runs(path, args.trials, overrides)
        setting = {"trials": args.trials, "overrides": list(overrides), "regime": list(REGIME)}

        def record(run: dict) -> None:
            with path.open("a") as f:
                f.write(json.dumps({**run, "setting": setting}) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        runs = run_all(methods, seeds, args.trials, overrides, args.jobs, Path(tmp),
                       log=lambda line: print(line, flush=True), known=known, record=record)
    wall = time.perf_counter() - start
    rows = summarise(runs)
    print()
    print(table(rows))
    print()
    print(per_method_table(runs))
    best = winner(rows)
    print()
    print(f"reaches (a)'s best within 1 point at <= 1/3 of its iterations (median over runs): "
          f"{best or 'none of (b), (c)'}")
    print(f"wall time {wall / 60:.1f} min, load average {os.getloadavg()[0]:.2f}")
    if args.csv:
        import pandas as pd

        pd.DataFrame([dict(method=r["method"], seed=r["seed"], strategy=r["strategy"], trial=i, iterations=u,
                           best=b) for r in runs for i, (u, b) in enumerate(r["curve"])]).to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
