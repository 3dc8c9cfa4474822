"""What a run will cost, before anything runs: ``dml-bench plan CONFIG [--measure]``.

Per dataset and method: the units (search trials, repeats; one Pretrained test per dataset), the
fold trainings, and the training iterations — the upper bound (``max_epochs`` x
``iterations_per_epoch`` per fold, or the search's ``budget_iterations``) and, when a finished or
interrupted run of the same config is in the run folder, the figure its early stopping gave
(the mean recorded iterations per search trial and per repeat).

``--measure`` times, on this machine, ``MEASURE_ITERATIONS`` training iterations and one validation
of every method on fold 0 of every dataset (the methods' default parameters), and one test
evaluation per dataset, then estimates the wall time for the chosen number of workers, assuming
they scale perfectly (the leaderboard's units are independent; ordered searches give each worker
other methods meanwhile). It prints its assumptions with the figures.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd
import yaml

from benchmark.config import BenchmarkConfig, DatasetConfig, config_to_dict
from benchmark.methods import get_method
from benchmark.protocol.run_config import config_difference
from benchmark.protocol.workbench import IterationCapReached, Workbench

#: Iterations timed per method and dataset by ``--measure`` (after an epoch of the same size as warm-up).
MEASURE_ITERATIONS = 20


@dataclass
class Timing:
    """Seconds per training iteration and per validation (fold 0), measured."""

    iteration: float
    validation: float


@dataclass
class PlanRow:
    dataset: str
    method: str
    trials: int
    repeats: int
    folds: int
    max_iterations: int  # the whole row's upper bound
    expected_iterations: Optional[float] = None  # from a previous run of this config
    timing: Optional[Timing] = None
    seconds: Optional[float] = None

    @property
    def fold_trainings(self) -> int:
        return (self.trials + self.repeats) * self.folds


@dataclass
class Plan:
    rows: list[PlanRow]
    pretrained_units: int
    test_seconds: dict[str, float] = field(default_factory=dict)  # per dataset, one test evaluation
    previous: Optional[Path] = None

    def totals(self) -> dict[str, float]:
        expected = [r.expected_iterations for r in self.rows]
        return {
            "units": sum(r.trials + r.repeats for r in self.rows) + self.pretrained_units,
            "fold_trainings": sum(r.fold_trainings for r in self.rows),
            "max_iterations": sum(r.max_iterations for r in self.rows),
            "expected_iterations": (sum(expected) if all(e is not None for e in expected) and expected
                                    else math.nan),
            "seconds": (sum(r.seconds for r in self.rows) + sum(self.test_seconds.values())
                        if all(r.seconds is not None for r in self.rows) else math.nan),
        }


def fold_iterations(cfg: BenchmarkConfig, dcfg: DatasetConfig) -> int:
    t = cfg.training_for(dcfg)
    return t.max_epochs * t.iterations_per_epoch


def plan_run(cfg: BenchmarkConfig, previous_run: Optional[Path] = None) -> Plan:
    """The counts of ``cfg`` (no data is loaded, nothing is built)."""
    p = cfg.protocol
    rows = []
    for d in cfg.datasets:
        per_fold = fold_iterations(cfg, d)
        for m in cfg.methods:
            trials = p.n_trials if get_method(m).search_space else 1
            search_max = trials * p.n_folds * per_fold
            if p.budget_iterations is not None:
                search_max = min(search_max, p.budget_iterations)
            rows.append(PlanRow(d.key, m, trials, p.n_repeats, p.n_folds,
                                search_max + p.n_repeats * p.n_folds * per_fold))
    plan = Plan(rows, pretrained_units=len(cfg.datasets))
    if previous_run is not None and _same_config(previous_run, cfg):
        plan.previous = previous_run
        _expected_from(previous_run, plan)
    return plan


def _same_config(run_dir: Path, cfg: BenchmarkConfig) -> bool:
    path = run_dir / "config.resolved.yaml"
    if not (path.is_file() and (run_dir / "trials.csv").is_file()):
        return False
    try:
        old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return False
    return not config_difference(old, config_to_dict(cfg))


def _expected_from(run_dir: Path, plan: Plan) -> None:
    """Each row's expected iterations: its recorded mean per search trial and per repeat, scaled to the
    plan's counts (rows the run has not reached keep None)."""
    trials = pd.read_csv(run_dir / "trials.csv")
    cost = pd.read_csv(run_dir / "cost.csv") if (run_dir / "cost.csv").is_file() else pd.DataFrame()
    for row in plan.rows:
        t = trials[(trials["dataset"] == row.dataset) & (trials["method"] == row.method)
                   & trials["state"].isin(["COMPLETE", "PRUNED"])]["iterations"].dropna()
        if t.empty:
            continue
        per_repeat = t.max()  # the best configuration trains to its own early stop; no record: the longest trial
        if not cost.empty:
            c = cost[(cost["stage"] == "repeats") & (cost["dataset"] == row.dataset)
                     & (cost["method"] == row.method)]["iterations"].dropna()
            if not c.empty:
                per_repeat = c.mean()
        row.expected_iterations = float(t.mean() * row.trials + per_repeat * row.repeats)


def measure(cfg: BenchmarkConfig, plan: Plan, *, iterations: int = MEASURE_ITERATIONS, progress: bool = False,
            say=print) -> None:
    """Time every method on fold 0 of every dataset and one test evaluation per dataset; fill in the
    plan's timings and seconds (expected iterations where known, else the upper bound)."""
    datasets = [dataclasses.replace(d, training={**d.training, "iterations_per_epoch": iterations,
                                                 "max_epochs": 3, "val_interval": 2,
                                                 "patience": 10}) for d in cfg.datasets]
    timed_cfg = dataclasses.replace(cfg, datasets=datasets)
    bench = Workbench(timed_cfg, progress=progress)
    for d, original in zip(datasets, cfg.datasets):
        start = time.perf_counter()
        bench.dataset(d)
        say(f"measure {d.key}: data ready in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        bench.evaluate(bench.untrained_models(d, ("plan", d.key)), d)
        plan.test_seconds[d.key] = time.perf_counter() - start
        for row in (r for r in plan.rows if r.dataset == d.key):
            row.timing = _time_method(bench, d, row.method, iterations)
            tcfg = cfg.training_for(original)
            per_fold_max = tcfg.max_epochs * tcfg.iterations_per_epoch
            its = row.expected_iterations if row.expected_iterations is not None else row.max_iterations
            validations = its / (tcfg.val_interval * tcfg.iterations_per_epoch)
            row.seconds = its * row.timing.iteration + validations * row.timing.validation \
                + row.repeats * plan.test_seconds[d.key]
            say(f"measure {d.key}/{row.method}: {1000 * row.timing.iteration:.1f} ms per iteration, "
                f"{row.timing.validation:.2f} s per validation (fold max {per_fold_max} iterations)")


def _time_method(bench: Workbench, dcfg: DatasetConfig, method: str, iterations: int) -> Timing:
    """Epoch 1 warms up; epoch 2 ends with a validation; epoch 3 is iterations only."""
    marks: list[float] = []
    validated: list[float] = []
    spec = get_method(method)
    params = {k: v for k, v in spec.defaults.items() if k in spec.search_space_for(dcfg.name)}
    try:
        bench.train_folds(method, params, dcfg, ("plan", dcfg.key, method), max_iterations=3 * iterations,
                          heartbeat=lambda: marks.append(time.perf_counter()),
                          on_validation=lambda *_: validated.append(time.perf_counter()))
    except IterationCapReached:
        pass  # fold 1 is not trained: the cap leaves it nothing
    if len(marks) < 3 or not validated:  # a diverged or early-stopped fold: time what ran
        raise RuntimeError(f"could not time {method} on {dcfg.key}: its fold stopped after {len(marks)} epochs")
    per_iteration = (marks[2] - marks[1]) / iterations
    validation = max(0.0, (marks[1] - marks[0]) - iterations * per_iteration)
    return Timing(per_iteration, validation)


def _hours(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _count(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.0f}" if x < 1e7 else f"{x / 1e6:,.0f}M"


def render_plan(plan: Plan, *, workers: int, gpus: int) -> str:
    """The plan as a table, its totals and its assumptions."""
    from tabulate import tabulate

    measured = any(r.timing is not None for r in plan.rows)
    headers = ["dataset", "method", "trials", "repeats", "fold trainings", "iterations (max)",
               "iterations (expected)"]
    if measured:
        headers += ["ms / iteration", "s / validation", "compute"]
    body = []
    for r in plan.rows:
        line = [r.dataset, r.method, r.trials, r.repeats, r.fold_trainings, _count(r.max_iterations),
                _count(r.expected_iterations)]
        if measured:
            line += [f"{1000 * r.timing.iteration:.1f}", f"{r.timing.validation:.2f}", _hours(r.seconds)]
        body.append(line)
    t = plan.totals()
    total = ["total", "", "", "", t["fold_trainings"], _count(t["max_iterations"]), _count(t["expected_iterations"])]
    if measured:
        total += ["", "", _hours(t["seconds"])]
    body.append(total)
    lines = [tabulate(body, headers=headers, tablefmt="github", disable_numparse=True), ""]
    lines.append(f"{t['units']:,} units of work ({plan.pretrained_units} Pretrained test"
                 f"{'s' if plan.pretrained_units > 1 else ''}, "
                 f"{sum(r.trials for r in plan.rows):,} search trials, {sum(r.repeats for r in plan.rows):,} repeats)")
    if measured:
        wall = t["seconds"] / max(1, workers)
        lines.append(f"estimated wall time with {workers} worker{'s' if workers > 1 else ''}"
                     f"{f' on {gpus} GPUs' if gpus else ''}: {_hours(wall)} "
                     f"(compute {_hours(t['seconds'])}; Pretrained tests {_hours(sum(plan.test_seconds.values()))})")
    lines.append("assumptions:")
    lines.append("  - iterations (max): every fold trains max_epochs x iterations_per_epoch (a search's "
                 "budget_iterations caps it); early stopping and pruning only lower it")
    if plan.previous is not None:
        lines.append(f"  - iterations (expected): the mean recorded in {plan.previous} (same config) per search "
                     f"trial and per repeat; rows it has not reached show —")
    else:
        lines.append("  - iterations (expected): — (no run of this config in the run folder to learn early "
                     "stopping from; give --out RUN)")
    if measured:
        lines.append(f"  - timings: {MEASURE_ITERATIONS} iterations and one validation of fold 0 per method "
                     f"(default parameters) on this machine; other parameters (e.g. a larger batch or model "
                     f"head) cost differently")
        lines.append("  - compute uses the expected iterations where known, else the maximum; the wall time "
                     "assumes the workers scale perfectly (independent units)")
    return "\n".join(lines)
