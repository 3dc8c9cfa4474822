"""Running a leaderboard: every (method, dataset) through search, repeats and test, by any number of workers.

A worker repeatedly takes the first stage that has work it can do (the stages' order is the
single-worker order: for each dataset the Pretrained row, then per method its search and then its
repeats). When everything left is held by other live workers it waits and looks again, so several
workers, on one machine or many sharing a storage URL, finish one leaderboard together; a
restarted worker picks up what is left.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from benchmark.config import BenchmarkConfig, config_to_dict
from benchmark.errors import StorageUnavailableError
from benchmark.protocol import budget
from benchmark.protocol import storage as st
from benchmark.protocol.export import export_results
from benchmark.protocol.run_config import refuse_config_change
from benchmark.protocol.units import BLOCKED, DONE, DROPPED, RAN, RepeatStage, SearchStage, Stages, build_stages
from benchmark.protocol.workbench import Workbench

log = logging.getLogger(__name__)
META_STUDY = "__meta__"


def check_storage_config(storage, cfg: BenchmarkConfig, *, allow_config_change: bool) -> None:
    """The storage remembers the config of its leaderboard; a worker with another config is refused."""
    meta = st.get_study(storage, META_STUDY)
    refuse_config_change(meta.user_attrs.get("config"), cfg, holder="the storage",
                         remedy="use --allow-config-change to continue it with the new config",
                         allow_config_change=allow_config_change)
    meta.set_user_attr("config", config_to_dict(cfg))


def work_done(stages: Stages) -> tuple[int, int]:
    """(finished units, total units) over every stage, for the overall progress bar."""
    done = total = 0
    for pre in stages.pretrained:
        total += pre.n_units
        done += len(pre.completed_units())
    for key, s in stages.search.items():
        finished = s.n_finished()
        total += finished if s.is_done() else s.n_trials  # a compute budget may end a search before n_trials
        done += finished
        r = stages.repeats[key]
        total += r.n_units
        done += len(r.completed_units())
    return done, total


def run_leaderboard(cfg: BenchmarkConfig, run_dir: Path, *, progress: bool = True,
                    allow_config_change: bool = False, bench: Workbench | None = None) -> Stages:
    """Work on the leaderboard until every unit is done; write the result files after every unit.

    ``bench`` may be a ``Workbench`` whose datasets are already loaded (the CLI loads them first,
    so that a bad dataset is reported before anything is written).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = st.create_storage(cfg.protocol.storage, run_dir, wait=cfg.protocol.storage_wait)
    check_storage_config(storage, cfg, allow_config_change=allow_config_change)
    bench = bench or Workbench(cfg, progress=progress)
    stages = build_stages(bench, storage)
    order = stages.ordered()
    done, total = work_done(stages)
    bar = tqdm(total=total, initial=done, desc="leaderboard", disable=not progress, dynamic_ncols=True)
    log.info("worker %s starts: %d of %d units already done", st.worker_id(), done, total)
    finished_stages: set[str] = set()
    try:
        while True:
            statuses = []
            for stage in order:
                status = stage.step()
                statuses.append(status)
                if status == RAN:
                    break
                if status == DONE and stage.name not in finished_stages:
                    finished_stages.add(stage.name)
                    _announce(stage, bar)
            if all(s == DONE for s in statuses) and len(statuses) == len(order):
                break
            if statuses[-1] == RAN:
                export_results(stages, run_dir, cfg)
                bar.n = work_done(stages)[0]
                bar.refresh()
            elif BLOCKED in statuses:
                log.info("waiting %.0fs for units held by other workers", cfg.protocol.poll_interval)
                time.sleep(cfg.protocol.poll_interval)
    finally:
        bar.close()
        export_results(stages, run_dir, cfg)  # also after an interruption: the files show what is done
    log.info("leaderboard complete")
    for line in run_summary(stages):
        log.info(line)
        print(line, file=sys.stderr)
    return stages


class StorageProgress:
    """One progress bar for a run whose units other processes do (``--workers``): it reads the storage."""

    def __init__(self, stages: Stages, *, enabled: bool) -> None:
        self.stages = stages
        done, total = work_done(stages)
        self.bar = tqdm(total=total, initial=done, desc="leaderboard", disable=not enabled, dynamic_ncols=True,
                        file=sys.stderr)

    def update(self) -> None:
        try:
            done, total = work_done(self.stages)
        except StorageUnavailableError:  # the workers report the outage themselves; the bar waits
            return
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()

    def check_complete(self) -> None:
        """Raise when the workers ended without finishing the leaderboard (they should not)."""
        done, total = work_done(self.stages)
        if done < total:
            raise RuntimeError(f"the workers exited with {done} of {total} units done")


def storage_progress(cfg: BenchmarkConfig, run_dir: Path, bench: Workbench, *, enabled: bool) -> StorageProgress:
    """A :class:`StorageProgress` of the run; opens (and, for a journal, repairs) the storage, so call it
    before any worker writes to it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per study created
    storage = st.create_storage(cfg.protocol.storage, run_dir, wait=cfg.protocol.storage_wait)
    return StorageProgress(build_stages(bench, storage), enabled=enabled)


def run_summary(stages: Stages) -> list[str]:
    """Lines that make diverged folds, redone units and late results visible at the end of a run."""
    diverged, redone, late = [], 0, 0
    for stage in stages.ordered():
        trials = stage.trials()
        redone += sum(t.state == TrialState.FAIL and DROPPED not in t.user_attrs for t in trials)
        late += len(stage.late_results())
        if isinstance(stage, SearchStage):
            units = stage.owners(trials).values()
        elif isinstance(stage, RepeatStage):
            units = stage.completed_units().values()
        else:
            continue
        bad = [t for t in units if "diverged" in t.user_attrs.get("fold_status", [])]
        if bad:
            diverged.append(f"{stage.name} ({len(bad)} of {len(units)})")
    lines = [f"summary: {redone} failed or interrupted unit attempts were redone; {late} late results "
             f"(recorded, not counted)"]
    if diverged:
        lines.append("warning: training diverged (non-finite loss; the fold kept its best checkpoint before it, "
                     "or scored 0) in: " + ", ".join(diverged))
    return lines


def _announce(stage, bar) -> None:
    """One summary line when a stage ends."""
    if isinstance(stage, SearchStage):
        best = stage.best_trial()
        states = [t.state for t in stage.owners().values()]
        spent = (f", {budget.spent(stage.trials())} of {stage.budget} budgeted iterations"
                 if stage.budget is not None else "")
        msg = (f"[search done] {stage.dcfg.key}/{stage.method}: {states.count(TrialState.COMPLETE)} complete, "
               f"{states.count(TrialState.PRUNED)} pruned{spent}; best val MAP@R {best.value:.4f} with {best.params}")
    elif isinstance(stage, RepeatStage):
        units = stage.completed_units()
        concat = [t.user_attrs["test"].get("concatenated", {}).get("map_at_r", float("nan")) for t in units.values()]
        msg = (f"[repeats done] {stage.dcfg.key}/{stage.method}: {len(units)} repeats, test concatenated MAP@R "
               f"mean {sum(concat) / len(concat):.4f}")
    else:
        test = next(iter(stage.completed_units().values())).user_attrs["test"]
        value = test.get("concatenated", test.get("fold0", {})).get("map_at_r", float("nan"))
        msg = f"[pretrained] {stage.dcfg.key}: test MAP@R {value:.4f}"
    log.info(msg)
    bar.write(msg)
