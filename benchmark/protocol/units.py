"""The protocol's units of work, each claimed and recorded as an Optuna trial.

* ``SearchStage``: one trial = one configuration trained on every fold; its value is the mean of
  the folds' best validation MAP@R (per-fold values stored on the trial). The method's defaults
  are the first trial. Pruning reports the running mean after each fold.
* ``RepeatStage``: the best configuration retrained from scratch, one trial per repeat (queued
  as waiting trials that workers pop), each evaluated on the test classes.
* ``PretrainedStage``: the "Pretrained" row (trunk before training, untrained embedders).

``step()`` does at most one unit and answers DONE (nothing left), RAN (did one) or BLOCKED
(the rest is held by other live workers). Any worker may call any stage's ``step``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import optuna
from optuna.trial import TrialState

from benchmark.config import BenchmarkConfig, DatasetConfig
from benchmark.methods import get_method
from benchmark.methods.search_space import suggest
from benchmark.protocol import storage as st
from benchmark.protocol.seeds import derive_seed
from benchmark.protocol.workbench import Workbench

log = logging.getLogger(__name__)

DONE, RAN, BLOCKED = "done", "ran", "blocked"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def study_name(dataset: str, method: str, stage: str) -> str:
    return f"{dataset}::{method}::{stage}"


def make_sampler(kind: str, seed: int, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=n_startup_trials)


class _Stage:
    def __init__(self, bench: Workbench, storage, dcfg: DatasetConfig, method: str, stage: str) -> None:
        self.bench, self.cfg, self.dcfg, self.method = bench, bench.cfg, dcfg, method
        self.name = study_name(dcfg.key, method, stage)
        self.study = st.get_study(storage, self.name)

    def _run(self, trial: optuna.Trial, fn) -> None:
        """Run ``fn(trial)`` -> value; record COMPLETE, PRUNED, or FAIL (then re-raise)."""
        st.claim(trial)
        try:
            value = fn(trial)
        except optuna.TrialPruned:
            self.study.tell(trial, state=TrialState.PRUNED)
            return
        except BaseException:
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        self.study.tell(trial, value)

    def trials(self, *states):
        return self.study.get_trials(deepcopy=False, states=states or None)


class SearchStage(_Stage):
    """Bayesian hyperparameter search over the folds."""

    def __init__(self, bench: Workbench, storage, dcfg: DatasetConfig, method: str) -> None:
        super().__init__(bench, storage, dcfg, method, "search")
        self.spec = get_method(method)
        self.n_trials = self.cfg.protocol.n_trials if self.spec.search_space else 1

    def _requeue_failed(self) -> None:
        trials = self.trials()
        retried = {t.user_attrs.get("retry_of") for t in trials}
        for t in trials:
            # an enqueued trial that failed before sampling keeps its values in "fixed_params"
            params = t.params or t.system_attrs.get("fixed_params")
            if t.state == TrialState.FAIL and t.number not in retried and params:
                self.study.enqueue_trial(params, user_attrs={"retry_of": t.number})

    def is_done(self) -> bool:
        return len(self.trials(*FINISHED)) >= self.n_trials

    def step(self) -> str:
        p = self.cfg.protocol
        st.fail_stale_trials(self.study, p.grace_period)
        self._requeue_failed()
        trials = self.trials()
        finished = [t for t in trials if t.state in FINISHED]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        if len(finished) >= self.n_trials:
            return DONE
        if len(finished) + len(running) >= self.n_trials and not waiting:
            return BLOCKED
        if not trials:  # the method's defaults are the first trial
            self.study.enqueue_trial({k: v for k, v in self.spec.defaults.items() if k in self.spec.search_space})
        slot = len(finished)
        self.study.sampler = make_sampler(p.sampler, derive_seed(self.cfg.seed, "sampler", self.name, slot),
                                          p.n_startup_trials)
        trial = self.study.ask()
        trial.set_user_attr("slot", slot)
        self._run(trial, lambda t: self._objective(t, slot))
        return RAN

    def _objective(self, trial: optuna.Trial, slot: int) -> float:
        params = suggest(trial, self.spec.search_space)
        values: list[float] = []
        statuses: list[str] = []
        self.study.pruner = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
                             if self.cfg.protocol.pruning else optuna.pruners.NopPruner())

        def on_fold_end(i, result):
            values.append(result.best_value)
            statuses.append(result.status)
            trial.set_user_attr("fold_values", values)
            trial.set_user_attr("fold_status", statuses)
            mean = sum(values) / len(values)
            trial.report(mean, i)
            st.beat(trial)
            if i + 1 < len(self.bench.dataset(self.dcfg).folds) and trial.should_prune():
                raise optuna.TrialPruned(f"fold {i}: running mean {mean:.4f} below the median")

        self.bench.train_folds(self.method, params, self.dcfg, ("search", self.name, slot),
                               on_fold_end=on_fold_end, heartbeat=lambda: st.beat(trial),
                               desc=f"{self.dcfg.key}/{self.method} trial {slot}")
        return sum(values) / len(values)

    def best_trial(self) -> optuna.trial.FrozenTrial:
        """The COMPLETE trial with the highest value (the earliest one on ties)."""
        return max(self.trials(TrialState.COMPLETE), key=lambda t: (t.value, -t.number))

    def best_params(self) -> dict:
        return dict(self.best_trial().params)


class _QueuedStage(_Stage):
    """Units known in advance (repeat indices), queued as WAITING trials that workers pop."""

    n_units: int

    def _run_unit(self, trial: optuna.Trial, unit: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _ready(self) -> bool:
        return True

    def step(self) -> str:
        if not self._ready():
            return BLOCKED
        st.fail_stale_trials(self.study, self.cfg.protocol.grace_period)
        trials = self.trials()
        done = {t.user_attrs.get("unit") for t in trials if t.state == TrialState.COMPLETE}
        if len(done) >= self.n_units:
            return DONE
        active = {t.user_attrs.get("unit") for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)}
        for unit in range(self.n_units):
            if unit not in done and unit not in active:
                self.study.enqueue_trial({}, user_attrs={"unit": unit})
        if not self.trials(TrialState.WAITING):
            return BLOCKED
        trial = self.study.ask()
        unit = trial.user_attrs.get("unit")
        if unit is None or unit in done:  # another worker took the last queued unit first
            self.study.tell(trial, state=TrialState.FAIL)
            return RAN
        self._run(trial, lambda t: self._run_unit(t, unit))
        return RAN

    def completed_units(self) -> dict[int, optuna.trial.FrozenTrial]:
        """The first COMPLETE trial of each unit (duplicates from racing workers are ignored)."""
        out: dict[int, optuna.trial.FrozenTrial] = {}
        for t in sorted(self.trials(TrialState.COMPLETE), key=lambda t: t.number):
            out.setdefault(t.user_attrs["unit"], t)
        return out


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
        self.study.set_user_attr("params", self.search.best_params())
        return True

    def _run_unit(self, trial: optuna.Trial, unit: int) -> float:
        params = self.study.user_attrs["params"]
        trained = self.bench.train_folds(self.method, params, self.dcfg, ("repeat", self.name, unit),
                                         heartbeat=lambda: st.beat(trial),
                                         desc=f"{self.dcfg.key}/{self.method} repeat {unit}")
        models = [m for m, _ in trained]
        results = [r for _, r in trained]
        trial.set_user_attr("test", self.bench.evaluate(models, self.dcfg))
        trial.set_user_attr("fold_values", [r.best_value for r in results])
        trial.set_user_attr("fold_status", [r.status for r in results])
        trial.set_user_attr("curves", [r.curve for r in results])
        return sum(r.best_value for r in results) / len(results)


class PretrainedStage(_QueuedStage):
    """The "Pretrained" row: the trunk before any training, with untrained embedders."""

    def __init__(self, bench: Workbench, storage, dcfg: DatasetConfig) -> None:
        super().__init__(bench, storage, dcfg, "pretrained", "test")
        self.n_units = 1

    def _run_unit(self, trial: optuna.Trial, unit: int) -> float:
        models = self.bench.untrained_models(self.dcfg, ("pretrained", self.dcfg.key))
        test = self.bench.evaluate(models, self.dcfg)
        trial.set_user_attr("test", test)
        return 0.0


@dataclass
class Stages:
    """All stages of a leaderboard, in the order a single worker runs them."""

    pretrained: list
    search: dict
    repeats: dict

    def ordered(self) -> list:
        out: list = []
        for pre in self.pretrained:
            out.append(pre)
            for (ds, _), s in self.search.items():
                if ds == pre.dcfg.key:
                    out += [s, self.repeats[(ds, s.method)]]
        return out


def build_stages(bench: Workbench, storage, cfg: Optional[BenchmarkConfig] = None) -> Stages:
    cfg = cfg or bench.cfg
    pre, search, repeats = [], {}, {}
    for dcfg in cfg.datasets:
        pre.append(PretrainedStage(bench, storage, dcfg))
        for m in cfg.methods:
            s = SearchStage(bench, storage, dcfg, m)
            search[(dcfg.key, m)] = s
            repeats[(dcfg.key, m)] = RepeatStage(bench, storage, dcfg, m, s)
    return Stages(pre, search, repeats)
