"""The protocol's units of work, each claimed and recorded exactly once as an Optuna trial.

* ``SearchStage``: ``n_trials`` slots; one slot = one configuration trained on every fold, its value
  the mean of the folds' best validation MAP@R (per-fold values stored on the trial). Slot 0 holds
  the method's defaults. A pruned trial finishes its slot as PRUNED (``fidelity``); only COMPLETE
  trials are configurations to choose from. With ``protocol.budget_iterations`` the search also ends
  when its training iterations are spent, each trial training at most its allowance (``budget``).
* ``RepeatStage``: the best configuration retrained from scratch, one unit per repeat, each
  evaluated on the test classes. With ``protocol.pooling: with_best_trial`` a method's row also pools
  the best search trial's own fold models (``RepeatStage.pooled_units``), as the reality check's
  published report did: a search trial that finishes ahead of every configuration finished before it
  (by ``best_trial``'s order) is evaluated on the test classes at once, its models still in memory, so
  the final best trial always has its test evaluation, whichever slots finished before it. The test
  evaluation is stored on the trial and never read by the search or the choice of the best trial.
* ``PretrainedStage``: the "Pretrained" row (trunk before training, untrained embedders), and the "Raw trunk"
  row (the trunk's pooled output, no embedder) in the same unit.

Exactly once, with any number of workers and no lock: every trial belongs to a unit (a search
slot, a repeat index), and the unit's **owner** is its lowest-numbered trial that has not failed.
Trial numbers are handed out atomically by the storage, so every worker computes the same owner.
A worker that pops or creates a trial which is not its unit's owner (two workers queued the same
repeat, or created a search trial past the budget) drops it before doing any work. A search slot's
parameters come from a sampler seeded by the slot, so racing workers never sample the same ones,
and a redone slot gets the same parameters and the same training. A trial whose worker died is
failed (see ``storage``) and its unit queued again; if that worker was only slow and reports
later, its result is kept as a late result and not counted. A worker stopped by a signal records its
trial failed at once (``released``), so its unit is queued again without waiting for the grace period.
A unit redone resumes from its checkpoint in the run folder (``unit_checkpoint``).

``step()`` does at most one unit and answers DONE (nothing left), RAN (did one) or BLOCKED
(the rest is held by other live workers). Any worker may call any stage's ``step``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Optional, Union

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from benchmark.config import BenchmarkConfig, DatasetConfig
from benchmark.constants import BEST_TRIAL_REPEAT, CONCATENATED, PRETRAINED, RAW_TRUNK
from benchmark.errors import ConfigError
from benchmark.methods import get_method
from benchmark.methods.search_space import suggest
from benchmark.protocol import budget
from benchmark.protocol.artifacts import ArtifactStore
from benchmark.protocol import storage as st
from benchmark.protocol.diverged_trial import trial_value
from benchmark.protocol.faults import kill_point
from benchmark.protocol.fidelity import PRUNED_ATTR, TrialProgress, make_pruner, trial_iterations
from benchmark.protocol.seeds import derive_seed
from benchmark.protocol.unit_checkpoint import discard
from benchmark.protocol.sobol_gp import SobolGPSampler, auto_startup_trials
from benchmark.protocol.workbench import IterationCapReached, Workbench

log = logging.getLogger(__name__)

DONE, RAN, BLOCKED = "done", "ran", "blocked"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: States of a trial that still holds (or has done) its unit.
LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
SLOT, UNIT, RETRY_OF, DROPPED, LATE = "slot", "unit", "retry_of", "dropped", "late_result"
#: A trial's test evaluation (``Workbench.evaluate``'s metrics), on repeats, the Pretrained unit and, under
#: ``protocol.pooling: with_best_trial``, on the search trials that led the search when they finished.
TEST = "test"
#: The Pretrained unit's attribute holding the raw trunk's test metrics.
RAW_TEST_ATTR, RAW_DIM_ATTR = "raw_test", "raw_dim"
#: A trial failed because its worker was stopped by a signal (the signal's name): its unit is free at once.
RELEASED = "released"
#: How many trials a worker may drop in a row before it gives the others time (a safety bound).
_MAX_DROPS = 50


class UnitLost(Exception):
    """This worker's trial was taken over by another worker while it ran (it was judged dead)."""


def study_name(dataset: str, method: str, stage: str) -> str:
    return f"{dataset}::{method}::{stage}"


#: ``protocol.sampler`` name -> ``make(seed, n_startup_trials, sequence_seed)`` (``seed``: the slot's;
#: ``sequence_seed``: the search's, for a design shared by its slots). ``sobol_gp`` is the reality check's
#: Ax default (Sobol start, GP + EI; ``benchmark.protocol.sobol_gp``); TPE uses constant liar so that
#: concurrent workers do not sample the same configuration.
SAMPLERS: dict[str, Callable[[int, int, int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed, n_startup, _: optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                                 n_startup_trials=n_startup, constant_liar=True),
    "gp": lambda seed, n_startup, _: optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup),
    "sobol_gp": lambda seed, n_startup, sequence_seed: SobolGPSampler(seed=seed, n_startup=n_startup,
                                                                      sequence_seed=sequence_seed),
    "random": lambda seed, n_startup, _: optuna.samplers.RandomSampler(seed=seed),
}


#: ``protocol.search_order``: ``ordered`` (slot k starts once slots < k are finished: any number of
#: workers gives one worker's search) or ``concurrent`` (a free worker starts the next slot at once).
SEARCH_ORDERS = ("ordered", "concurrent")


def make_sampler(kind: str, seed: int, n_startup_trials: int, sequence_seed: int = 0) -> optuna.samplers.BaseSampler:
    return SAMPLERS[kind](seed, n_startup_trials, sequence_seed)


def startup_trials(value: Union[int, str], n_params: int) -> int:
    """``protocol.n_startup_trials``: as given, or ``auto``: max(5, number of searched parameters)."""
    return auto_startup_trials(n_params) if value == "auto" else int(value)


def owners(trials: list[FrozenTrial], units: dict[int, int]) -> dict[int, FrozenTrial]:
    """Each unit's owner: its lowest-numbered trial that is waiting, running or finished.

    ``units`` maps a trial number to its unit; trials missing from it belong to no unit.
    """
    out: dict[int, FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        k = units.get(t.number)
        if k is not None and t.state in LIVE and k not in out:
            out[k] = t
    return out


class _Stage:
    #: Where a repeat keeps its embeddings and models (``protocol.save``); None: nothing is kept.
    artifacts: Optional[ArtifactStore] = None

    def __init__(self, bench: Workbench, storage, dcfg: DatasetConfig, method: str, stage: str) -> None:
        self.bench, self.cfg, self.dcfg, self.method = bench, bench.cfg, dcfg, method
        self.name = study_name(dcfg.key, method, stage)
        self.study = st.get_study(storage, self.name)

    def trials(self, *states) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def _drop(self, trial: optuna.Trial, reason: str) -> None:
        """Give back a trial that is not its unit's owner, before any work was done for it."""
        trial.set_user_attr(DROPPED, reason)
        self.study.tell(trial, state=TrialState.FAIL)
        log.info("%s: trial %d dropped (%s)", self.name, trial.number, reason)

    def _run(self, trial: optuna.Trial, key: tuple, fn: Callable[[optuna.Trial, st.Heartbeat], tuple]) -> None:
        """Run ``fn(trial, heartbeat)`` -> (value, attrs); record COMPLETE, PRUNED, or FAIL (then re-raise).

        If another worker took the trial over meanwhile, the value and attrs are kept as a late
        result on the study (never counted) and the unit's new owner stands. The unit's checkpoint
        (``key``: its seed key, see ``unit_checkpoint``) is removed once the unit is recorded; a failed
        unit keeps it for the worker that redoes it. A unit stopped by a signal (a ``KeyboardInterrupt``:
        SIGTERM, SIGUSR1, Ctrl-C) is recorded FAIL with ``released`` naming the signal: released, so
        that any live worker takes it up at once, from its checkpoint.
        """
        interval = st.heartbeat_interval(self.cfg.protocol.grace_period)
        value: Optional[float] = None
        attrs: Optional[dict] = None
        with st.Heartbeat(trial, interval) as heartbeat:
            try:
                value, attrs = fn(trial, heartbeat)
                for name, val in attrs.items():
                    trial.set_user_attr(name, val)
                self.study.tell(trial, value)
            except optuna.TrialPruned:
                self._tell_quietly(trial, TrialState.PRUNED)
            except (UnitLost, UpdateFinishedTrialError):
                self._record_late(trial, value, attrs)
                return
            except BaseException as exc:
                if self._taken_over(trial):  # Optuna refuses to tell a trial another worker failed (ValueError)
                    self._record_late(trial, value, attrs)
                    return
                if isinstance(exc, KeyboardInterrupt):
                    try:
                        trial.set_user_attr(RELEASED, getattr(exc, "signal_name", "SIGINT"))
                    except Exception:  # noqa: BLE001 - the FAIL below is what releases the unit
                        pass
                self._tell_quietly(trial, TrialState.FAIL)
                raise
        discard(self.bench.checkpoint_root, key)

    def _taken_over(self, trial: optuna.Trial) -> bool:
        """True when this worker's running trial was finished by another worker (judged dead)."""
        try:
            return next(t for t in self.trials() if t.number == trial.number).state != TrialState.RUNNING
        except Exception:  # noqa: BLE001 - the storage itself failed: report the original error instead
            return False

    def _tell_quietly(self, trial: optuna.Trial, state: TrialState) -> None:
        try:
            self.study.tell(trial, state=state)
        except (UpdateFinishedTrialError, ValueError, RuntimeError):
            if not self._taken_over(trial):  # taken over meanwhile: nothing of ours to record
                raise

    def _record_late(self, trial: optuna.Trial, value: Optional[float], attrs: Optional[dict]) -> None:
        """Keep the result of a trial that another worker took over, beside the study; it counts nowhere."""
        self.study.set_user_attr(f"{LATE}:{trial.number}", {"value": value, "attrs": attrs or {},
                                                             "worker": st.worker_id(), "time": time.time()})
        log.warning("%s: trial %d was taken over by another worker while this one ran; its result is recorded "
                    "as late and not counted", self.name, trial.number)

    def late_results(self) -> dict:
        return {k: v for k, v in self.study.user_attrs.items() if k.startswith(f"{LATE}:")}


class SearchStage(_Stage):
    """Bayesian hyperparameter search over the folds: ``n_trials`` slots, each done exactly once."""

    def __init__(self, bench: Workbench, storage, dcfg: DatasetConfig, method: str) -> None:
        super().__init__(bench, storage, dcfg, method, "search")
        self.spec = get_method(method)
        #: The method's search space on this dataset (``MethodSpec.search_space_for``).
        self.space = self.spec.search_space_for(dcfg.name)
        self.n_trials = self.cfg.protocol.n_trials if self.space else 1
        self.tcfg = self.cfg.training_for(dcfg)
        #: A whole trial's most training iterations; the search's budget (None: n_trials alone).
        self.trial_max = trial_iterations(self.cfg.protocol.n_folds, self.tcfg)
        self.budget = self.cfg.protocol.budget_iterations
        self.study.pruner = make_pruner(self.cfg.protocol.pruner, n_folds=self.cfg.protocol.n_folds, tcfg=self.tcfg)

    @staticmethod
    def slots(trials: list[FrozenTrial]) -> dict[int, int]:
        """Trial number -> slot. Queued trials carry their slot; asked ones take the next slot in number order.

        Slot 0 is the queued defaults, so the k-th asked trial (k = 0, 1, ...) holds slot k + 1. Whether a
        trial was queued or asked is fixed when it is created, so a trial's slot never changes.
        """
        out, asked = {}, 0
        for t in sorted(trials, key=lambda t: t.number):
            if "fixed_params" in t.system_attrs:  # queued: its slot came with it (none: not a unit of ours)
                if SLOT in t.user_attrs:
                    out[t.number] = int(t.user_attrs[SLOT])
            else:
                asked += 1
                out[t.number] = asked
        return out

    def owners(self, trials: Optional[list[FrozenTrial]] = None) -> dict[int, FrozenTrial]:
        trials = self.trials() if trials is None else trials
        slots = self.slots(trials)
        return {s: t for s, t in owners(trials, slots).items() if s < self.n_trials}

    def n_finished(self, trials: Optional[list[FrozenTrial]] = None) -> int:
        """How many slots of the budget are finished (complete or pruned)."""
        return sum(t.state in FINISHED for t in self.owners(trials).values())

    def budget_spent(self, trials: list[FrozenTrial]) -> bool:
        """True when a compute budget is set and less than an epoch of it is left beside finished and running trials."""
        return self.budget is not None and \
            budget.left(trials, self.budget, self.trial_max) < self.tcfg.iterations_per_epoch

    def is_done(self) -> bool:
        trials = self.trials()
        if self.n_finished(trials) >= self.n_trials:
            return True
        return self.budget_spent(trials) and not any(t.state == TrialState.RUNNING for t in trials)

    def _requeue(self, trials: list[FrozenTrial], slots: dict[int, int], live: dict[int, FrozenTrial]) -> bool:
        """Queue a retry of every slot whose trials all failed; True if any was queued."""
        failed: dict[int, FrozenTrial] = {}
        for t in sorted(trials, key=lambda t: t.number):
            s = slots.get(t.number)
            if s is not None and s < self.n_trials and s not in live and t.state == TrialState.FAIL:
                if DROPPED not in t.user_attrs or s not in failed:
                    failed[s] = t
        for s, t in failed.items():
            # the same parameters again: those it was queued with and those it sampled
            params = {**(t.system_attrs.get("fixed_params") or {}), **t.params}
            self.study.enqueue_trial(params, user_attrs={SLOT: s, RETRY_OF: t.number})
        return bool(failed)

    def step(self) -> str:
        p = self.cfg.protocol
        for _ in range(_MAX_DROPS):
            st.fail_stale_trials(self.study, p.grace_period, st.unclaimed_after(p.storage_wait))
            trials = self.trials()
            if not trials:  # the method's defaults are slot 0
                defaults = {k: v for k, v in self.spec.defaults.items() if k in self.space}
                self.study.enqueue_trial(defaults, user_attrs={SLOT: 0})
                continue
            slots = self.slots(trials)
            live = owners(trials, slots)
            live = {s: t for s, t in live.items() if s < self.n_trials}
            if sum(t.state in FINISHED for t in live.values()) >= self.n_trials:
                return DONE
            if self.budget_spent(trials):  # running trials may leave some unused: wait for them
                return BLOCKED if any(t.state == TrialState.RUNNING for t in trials) else DONE
            if self._requeue(trials, slots, live):
                continue
            waiting = any(t.state == TrialState.WAITING for t in live.values())
            if not waiting and len(live) >= self.n_trials:
                return BLOCKED  # every slot is held by a running worker
            lowest = self._next_in_order(trials, live)
            if lowest is None:
                return BLOCKED  # ordered search: the slot before the next one is still running
            trial = self.study.ask()
            st.claim(trial)
            everything = self.trials()
            now = self.slots(everything)
            slot = now.get(trial.number)
            if slot is None or slot >= self.n_trials:
                self._drop(trial, "surplus: every slot of the budget already has a trial")
                continue
            owner = owners(everything, now).get(slot)
            if owner is None or owner.number != trial.number:
                self._drop(trial, f"duplicate: slot {slot} belongs to trial {owner.number if owner else '?'}")
                continue
            if lowest >= 0 and slot != lowest:
                self._drop(trial, f"ordered search: slot {slot} waits for slot {lowest}")
                continue
            trial.set_user_attr(SLOT, slot)
            allowance = None
            if self.budget is not None:  # the trials below this one hold theirs already: see ``budget``
                allowance = budget.allowance(self.trials(), trial.number, self.budget, self.trial_max)
                if allowance < self.tcfg.iterations_per_epoch:
                    self._drop(trial, f"budget: {allowance} iterations free for it, less than an epoch")
                    return BLOCKED  # trials running elsewhere hold the rest
                trial.set_user_attr(budget.ALLOWANCE, allowance)
            # parameters are sampled lazily at the first suggest: seed the sampler by the slot now
            self.study.sampler = make_sampler(p.sampler, derive_seed(self.cfg.seed, "sampler", self.name, slot),
                                              startup_trials(p.n_startup_trials, len(self.space)),
                                              derive_seed(self.cfg.seed, "sampler", self.name))
            self._run(trial, ("search", self.name, slot),
                      lambda t, hb, slot=slot, cap=allowance: self._objective(t, slot, hb, cap))
            return RAN
        return BLOCKED

    def _next_in_order(self, trials: list[FrozenTrial], live: dict[int, FrozenTrial]) -> Optional[int]:
        """The slot this worker may start next: with ``protocol.search_order: ordered``, the lowest
        unfinished slot, once no trial of it runs (None: wait); -1 when slots run in any order.

        Ordered, every slot samples its parameters, and is pruned, against exactly the finished slots
        before it, whatever the number of workers and their timing: the search is the one a single
        worker runs. Workers find other work meanwhile (other methods' searches, repeats).
        """
        if self.cfg.protocol.search_order != "ordered":
            return -1
        if any(t.state == TrialState.RUNNING for t in live.values()):
            return None  # the lowest unfinished slot runs (or one of a concurrent search: let it end)
        return next(s for s in range(self.n_trials) if s not in live or live[s].state not in FINISHED)

    def _objective(self, trial: optuna.Trial, slot: int, heartbeat: st.Heartbeat,
                   allowance: Optional[int]) -> tuple[float, dict]:
        params = suggest(trial, self.space)
        progress = TrialProgress(trial, self.cfg.protocol.pruner, self.cfg.protocol.n_folds, prunable=slot != 0)

        def on_fold_end(i, result):
            if heartbeat.lost:
                raise UnitLost(trial.number)
            kill_point("search.fold_end")
            progress.fold_end(i, result)

        def on_validation(i, epoch, iteration, value):
            if heartbeat.lost:
                raise UnitLost(trial.number)
            progress.validation(i, epoch, iteration, value)

        try:
            trained = self.bench.train_folds(self.method, params, self.dcfg, ("search", self.name, slot),
                                             on_fold_end=on_fold_end, on_validation=on_validation,
                                             max_iterations=allowance, heartbeat=heartbeat.beat,
                                             desc=f"{self.dcfg.key}/{self.method} trial {slot}")
        except IterationCapReached as exc:
            trial.set_user_attr(PRUNED_ATTR, f"budget: {exc}")
            raise optuna.TrialPruned(str(exc)) from None
        value = trial_value(progress.mean(), progress.statuses, self.cfg.protocol.diverged_trial)
        attrs = {}
        if self.cfg.protocol.pooling == "with_best_trial" and self.leads(trial.number, slot, value):
            if heartbeat.lost:
                raise UnitLost(trial.number)
            attrs[TEST] = self.bench.evaluate([m for m, _ in trained], self.dcfg)
        return value, attrs

    def leads(self, number: int, slot: int, value: float) -> bool:
        """True when trial ``number`` of ``slot`` with ``value`` beats every other COMPLETE slot by
        ``best_trial``'s order (the higher value, then the lower slot). The final best trial beats them all,
        so it leads whenever it finishes: under ``with_best_trial`` pooling it is always tested."""
        trials = self.trials()
        slots = self.slots(trials)
        return all((value, -slot) > (t.value, -slots[t.number]) for t in self.owners(trials).values()
                   if t.state == TrialState.COMPLETE and t.number != number)

    def best_trial(self) -> FrozenTrial:
        """The COMPLETE slot with the highest value (the lowest slot on ties); pruned trials never count."""
        trials = self.trials()
        slots = self.slots(trials)
        complete = [t for t in self.owners(trials).values() if t.state == TrialState.COMPLETE]
        if not complete:
            raise ConfigError(f"search {self.name} ended without a complete configuration (every trial pruned or "
                              f"cut by protocol.budget_iterations); raise the budget or change protocol.pruner")
        return max(complete, key=lambda t: (t.value, -slots[t.number]))

    def best_params(self) -> dict:
        return dict(self.best_trial().params)


class _QueuedStage(_Stage):
    """Units known in advance (repeat indices), queued as WAITING trials that workers pop."""

    n_units: int

    def _run_unit(self, trial: optuna.Trial, unit: int,
                  heartbeat: st.Heartbeat) -> tuple[float, dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _ready(self) -> bool:
        return True

    def _key(self, unit: int) -> tuple:
        """The unit's seed key (its checkpoint's identity)."""
        return ("repeat", self.name, unit)

    @staticmethod
    def _unit(t: FrozenTrial) -> Optional[int]:
        unit = t.user_attrs.get(UNIT)
        return None if unit is None else int(unit)

    @classmethod
    def units(cls, trials: list[FrozenTrial]) -> dict[int, int]:
        """Trial number -> unit, for the trials queued with one."""
        return {t.number: cls._unit(t) for t in trials if cls._unit(t) is not None}

    def step(self) -> str:
        if not self._ready():
            return BLOCKED
        for _ in range(_MAX_DROPS):
            p = self.cfg.protocol
            st.fail_stale_trials(self.study, p.grace_period, st.unclaimed_after(p.storage_wait))
            trials = self.trials()
            live = {u: t for u, t in owners(trials, self.units(trials)).items() if u < self.n_units}
            if sum(t.state == TrialState.COMPLETE for t in live.values()) >= self.n_units:
                return DONE
            last_failed = {self._unit(t): t.number for t in sorted(trials, key=lambda t: t.number)
                           if t.state == TrialState.FAIL and DROPPED not in t.user_attrs}
            missing = [u for u in range(self.n_units) if u not in live]
            for unit in missing:  # two workers may queue the same unit: the owner rule keeps one
                attrs = {UNIT: unit}
                if unit in last_failed:
                    attrs[RETRY_OF] = last_failed[unit]
                self.study.enqueue_trial({}, user_attrs=attrs)
            if missing:
                continue
            if not any(t.state == TrialState.WAITING for t in live.values()):
                return BLOCKED
            trial = self.study.ask()
            st.claim(trial)
            everything = self.trials()
            unit = self._unit(next(t for t in everything if t.number == trial.number))
            owner = owners(everything, self.units(everything)).get(unit) if unit is not None else None
            if unit is None or unit >= self.n_units or owner is None or owner.number != trial.number:
                why = "no unit (the queue was empty)" if unit is None else \
                    f"duplicate: unit {unit} belongs to trial {owner.number if owner else '?'}"
                self._drop(trial, why)
                continue
            self._run(trial, self._key(unit), lambda t, hb, unit=unit: self._run_unit(t, unit, hb))
            return RAN
        return BLOCKED

    def completed_units(self) -> dict[int, FrozenTrial]:
        """Each unit's COMPLETE owner trial."""
        trials = self.trials()
        return {u: t for u, t in sorted(owners(trials, self.units(trials)).items())
                if t.state == TrialState.COMPLETE and u < self.n_units}


class RepeatStage(_QueuedStage):
    """The best configuration retrained ``n_repeats`` times and tested."""

    def __init__(self, bench: Workbench, storage, dcfg: DatasetConfig, method: str, search: SearchStage) -> None:
        super().__init__(bench, storage, dcfg, method, "repeats")
        self.search = search
        self.n_units = self.cfg.protocol.n_repeats

    def _ready(self) -> bool:
        if "params" in self.study.user_attrs:
            return True
        if not self.search.is_done():
            return False
        # every worker computes the same best (the finished slots are final), so racing writes agree
        self.study.set_user_attr("params", self.search.best_params())
        return True

    def _run_unit(self, trial: optuna.Trial, unit: int, heartbeat: st.Heartbeat) -> tuple[float, dict]:
        params = self.study.user_attrs["params"]
        trained = self.bench.train_folds(self.method, params, self.dcfg, ("repeat", self.name, unit),
                                         heartbeat=heartbeat.beat,
                                         desc=f"{self.dcfg.key}/{self.method} repeat {unit}")
        if heartbeat.lost:
            raise UnitLost(trial.number)
        kill_point("repeat.trained")
        models = [m for m, _ in trained]
        results = [r for _, r in trained]
        emb = self.bench.embed_test(models, self.dcfg)
        test = self.bench.score(emb, self.dcfg)
        kill_point("test.evaluated")
        if self.artifacts is not None:
            self.artifacts.save(dataset=self.dcfg.key, method=self.method, repeat=unit, emb=emb, models=models,
                                meta={"params": params, "seed": self.cfg.seed},
                                fold_meta=[{"best_val_map_at_r": r.best_value, "status": r.status,
                                            "iterations": r.iterations, "trunk": self.cfg.model.trunk,
                                            "embedding_dim": self.cfg.model.embedding_dim} for r in results])
        attrs = {TEST: test, "fold_values": [r.best_value for r in results],
                 "fold_status": [r.status for r in results], "fold_iterations": [r.iterations for r in results],
                 "curves": [r.curve for r in results]}
        return sum(r.best_value for r in results) / len(results), attrs

    def pooled_units(self) -> dict[int, FrozenTrial]:
        """The trials the method's test row pools, by their ``repeat`` in ``results.csv``: the completed
        repeats and, under ``protocol.pooling: with_best_trial`` once the best configuration is chosen, the
        best search trial as ``BEST_TRIAL_REPEAT``.

        A best trial without a test evaluation (its search ran under ``pooling: repeats``) is refused in one line.
        """
        units = self.completed_units()
        if self.cfg.protocol.pooling != "with_best_trial" or "params" not in self.study.user_attrs:
            return units
        best = self.search.best_trial()
        if TEST not in best.user_attrs:
            slot = self.search.slots(self.search.trials())[best.number]
            raise ConfigError(f"protocol.pooling: with_best_trial pools the best search trial of {self.search.name} "
                              f"(slot {slot}), but it has no test evaluation: the search ran under pooling: "
                              f"repeats (expected a new run folder, or protocol.pooling: repeats)")
        return {BEST_TRIAL_REPEAT: best, **units}


class PretrainedStage(_QueuedStage):
    """The "Pretrained" row: the trunk before any training, with untrained embedders; and beside it the
    "Raw trunk" row (``raw_test``): the trunk's pooled output as it is, no embedder (a features dataset's
    features as given), scored as one whole embedding (``concatenated``)."""

    def __init__(self, bench: Workbench, storage, dcfg: DatasetConfig) -> None:
        super().__init__(bench, storage, dcfg, "pretrained", "test")
        self.n_units = 1

    def _run_unit(self, trial: optuna.Trial, unit: int, heartbeat: st.Heartbeat) -> tuple[float, dict]:
        models = self.bench.untrained_models(self.dcfg, ("pretrained", self.dcfg.key))
        emb = self.bench.embed_test(models, self.dcfg)
        test = self.bench.score(emb, self.dcfg)
        raw = self.bench.raw_trunk_embeddings(self.dcfg)  # scored like every concatenation: no TAR@FAR
        attrs = {TEST: test}
        if raw is not None:  # (a paired dataset has no raw-trunk row)
            attrs.update({RAW_TEST_ATTR: self.bench.score(raw, self.dcfg),
                          RAW_DIM_ATTR: int(raw.query[CONCATENATED].shape[1])})
        kill_point("test.evaluated")
        if self.artifacts is not None:
            meta = {"seed": self.cfg.seed}
            self.artifacts.save(dataset=self.dcfg.key, method=PRETRAINED, repeat=unit, emb=emb, meta=meta)
            if raw is not None:
                self.artifacts.save(dataset=self.dcfg.key, method=RAW_TRUNK, repeat=unit, emb=raw, meta=meta)
        return 0.0, attrs


@dataclass
class Stages:
    """All stages of a leaderboard: ``work_order`` (what a worker looks at first) and ``ordered`` (by method)."""

    pretrained: list
    search: dict
    repeats: dict
    #: After ``run_leaderboard``: None when this worker prints the final tables, else the record of the
    #: worker that does (``{"worker": host:pid, "run_dir": ..., "same_folder": bool}``), set by ``leaderboard``.
    finished_by: Optional[dict] = None

    def work_order(self) -> list:
        """The order a worker looks for work in: each dataset's Pretrained evaluation, every search, then every
        repeat stage. A search is a chain (ordered search: slot k waits for slot k - 1), repeats are independent
        units: starting every chain first keeps all workers busy to the end, where the repeats fill them; by
        method instead, the last method's chain would run alone while the other workers wait. The order
        changes no result (every unit's seed and sampler history are fixed), only when each is done."""
        return list(self.pretrained) + list(self.search.values()) + list(self.repeats.values())

    def ordered(self) -> list:
        """The stages by dataset and method (Pretrained, then each method's search and repeats): the order of
        summaries and of the finish claim."""
        out: list = []
        for pre in self.pretrained:
            out.append(pre)
            for (ds, _), s in self.search.items():
                if ds == pre.dcfg.key:
                    out += [s, self.repeats[(ds, s.method)]]
        return out


def build_stages(bench: Workbench, storage, cfg: Optional[BenchmarkConfig] = None, *,
                 artifacts: Optional[ArtifactStore] = None) -> Stages:
    """Every stage of ``cfg``'s leaderboard; with ``artifacts``, repeats (and the Pretrained and raw-trunk
    rows) keep what ``artifacts.mode`` asks for."""
    cfg = cfg or bench.cfg
    pre, search, repeats = [], {}, {}
    for dcfg in cfg.datasets:
        pre.append(PretrainedStage(bench, storage, dcfg))
        for m in cfg.methods:
            s = SearchStage(bench, storage, dcfg, m)
            search[(dcfg.key, m)] = s
            repeats[(dcfg.key, m)] = RepeatStage(bench, storage, dcfg, m, s)
    stages = Stages(pre, search, repeats)
    if artifacts is not None and artifacts.mode != "none":
        for stage in stages.ordered():
            stage.artifacts = artifacts
    return stages
