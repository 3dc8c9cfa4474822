"""Running a leaderboard: every (method, dataset) through search, repeats and test, by any number of workers.

A worker repeatedly takes the first stage that has work it can do (the stages' order is the
single-worker order: for each dataset the Pretrained row, then per method its search and then its
repeats). When everything left is held by other live workers it waits and looks again, so several
workers, on one machine or many sharing a storage URL, finish one leaderboard together; a
restarted worker picks up what is left.

With several workers, a stage's summary line (``[search done]`` ...) is printed by the worker that finished
the stage's last unit, and the final tables by one worker: the first to claim the finished leaderboard in
the storage (``FINISH_STUDY``; the lowest trial number wins, as for units). A worker that started on a
leaderboard that was already complete (a re-run) prints them too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Optional

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from benchmark.config import BenchmarkConfig, config_to_dict
from benchmark.errors import StorageUnavailableError
from benchmark.protocol import budget
from benchmark.protocol import storage as st
from benchmark.protocol.artifacts import ArtifactStore
from benchmark.protocol.cross_modal import headline_map_at_r
from benchmark.protocol.export import export_results
from benchmark.protocol.run_config import refuse_config_change
from benchmark.protocol.unit_checkpoint import CHECKPOINT_DIR, discard_all
from benchmark.protocol.units import (BLOCKED, DONE, DROPPED, RAN, RAW_TEST_ATTR, RepeatStage, SearchStage, Stages,
                                      build_stages)
from benchmark.protocol.workbench import Workbench

log = logging.getLogger(__name__)
META_STUDY = "__meta__"
#: One trial per worker that saw the leaderboard finish; the lowest-numbered one prints the final tables.
FINISH_STUDY = "__finished__"


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
    bench.checkpoint_root = run_dir / CHECKPOINT_DIR  # units resume from there (``unit_checkpoint``)
    stages = build_stages(bench, storage, artifacts=ArtifactStore(run_dir, cfg.protocol.save))
    order = stages.work_order()
    done, total = work_done(stages)
    complete_at_start = done >= total
    bar = tqdm(total=total, initial=done, desc="leaderboard", disable=not progress, dynamic_ncols=True)
    log.info("worker %s starts: %d of %d units already done", st.worker_id(), done, total)
    finished_stages: set[str] = set()
    ran_any = False
    try:
        while True:
            statuses = []
            for stage in order:
                status = stage.step()
                statuses.append(status)
                if status == RAN:
                    ran_any = True
                    break
                if status == DONE and stage.name not in finished_stages:
                    finished_stages.add(stage.name)
                    if complete_at_start or _finished_here(stage):
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
    discard_all(bench.checkpoint_root)  # every unit is recorded
    log.info("leaderboard complete")
    for line in run_summary(stages):
        log.info(line)
        print(line, file=sys.stderr)
    if not complete_at_start:
        stages.finished_by = _claim_finish(storage, stages, run_dir, ran_any=ran_any)
    return stages


class StorageProgress:
    """One progress bar for a run whose units other processes do (``--workers``): it reads the storage."""

    #: Seconds between two reads of the storage: each reads every study, CPU taken from the workers.
    EVERY = 5.0

    def __init__(self, stages: Stages, *, enabled: bool) -> None:
        self.stages = stages
        self.read_at = time.monotonic()
        done, total = work_done(stages)
        self.bar = tqdm(total=total, initial=done, desc="leaderboard", disable=not enabled, dynamic_ncols=True,
                        file=sys.stderr)

    def update(self) -> None:
        if time.monotonic() - self.read_at < self.EVERY:
            return
        self.read_at = time.monotonic()
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


def _finished_here(stage) -> bool:
    """True when this process finished the stage's last unit (the latest-completed of its counted trials)."""
    if isinstance(stage, SearchStage):
        units = [t for t in stage.owners().values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    else:
        units = list(stage.completed_units().values())
    last = max((t for t in units if t.datetime_complete is not None), key=lambda t: t.datetime_complete,
               default=None)
    return last is not None and last.user_attrs.get(st.WORKER_ATTR) == st.worker_id() and \
        last.user_attrs.get(st.WORKER_NS_ATTR) == st.process_namespace()


def _claim_finish(storage, stages: Stages, run_dir: Path, *, ran_any: bool) -> Optional[dict]:
    """None when this worker prints the final tables, else the record of the worker that does
    (``{"worker": host:pid, "run_dir": ..., "same_folder": whether that is this worker's run folder}``).

    Every worker that worked on the leaderboard claims its end with a trial in ``FINISH_STUDY`` (one per
    set of stages, so a leaderboard continued with more methods is claimed anew); the lowest-numbered
    claim wins, and the worker that finished the last unit sees the end first. A worker that ran nothing
    does not claim: another one finished the work."""
    key = hashlib.sha256(json.dumps([s.name for s in stages.ordered()]).encode()).hexdigest()[:16]
    study = st.get_study(storage, f"{FINISH_STUDY}::{key}")
    mine = None
    if ran_any:
        trial = study.ask()
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        st.claim(trial)
        study.tell(trial, 0.0)
        mine = trial.number
    # every claim, told or not yet: trial numbers are handed out atomically, so all workers agree on the first
    claims = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    here = str(run_dir.resolve())
    if not claims:  # every unit finished by workers that are still claiming: a moment later it is there
        return {"worker": "another worker", "run_dir": here, "same_folder": False}
    first = claims[0]
    if first.number == mine:
        return None
    worker = str(first.user_attrs.get(st.WORKER_ATTR, "another worker"))
    theirs = first.user_attrs.get("run_dir", "")
    # the same folder only on the same host (two machines may both write results/quick)
    same = theirs == here and worker.rpartition(":")[0] == st.worker_id().rpartition(":")[0]
    return {"worker": worker, "run_dir": theirs or here, "same_folder": same}


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
        concat = [headline_map_at_r(t.user_attrs["test"]) for t in units.values()]
        msg = (f"[repeats done] {stage.dcfg.key}/{stage.method}: {len(units)} repeats, test concatenated MAP@R "
               f"mean {sum(concat) / len(concat):.4f}")
    else:
        attrs = next(iter(stage.completed_units().values())).user_attrs
        value = headline_map_at_r(attrs["test"])
        raw = attrs.get(RAW_TEST_ATTR, {}).get("concatenated", {}).get("map_at_r")
        msg = f"[pretrained] {stage.dcfg.key}: test MAP@R {value:.4f}" + (
            f" (raw trunk {raw:.4f})" if raw is not None else "")
    log.info(msg)
    bar.write(msg)
