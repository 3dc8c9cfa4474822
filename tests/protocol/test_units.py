"""Work queued through the storage: a second worker finds the repeats left, never one twice."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from benchmark.errors import ConfigError

from benchmark.protocol.run_config import assemble_config
from benchmark.protocol import storage as st
from benchmark.protocol.seeds import derive_seed
from benchmark.protocol.units import BLOCKED, DONE, RAN, RepeatStage, SearchStage


class FakeBench:
    """Stands in for the Workbench: records which units were run instead of training."""

    checkpoint_root = None  # (no unit checkpoints)

    def __init__(self, cfg):
        self.cfg = cfg
        self.ran = []

    def train_folds(self, method, params, dcfg, key, **kwargs):
        self.ran.append(key)
        on_fold_end = kwargs.get("on_fold_end")

        class R:
            best_value, status, curve, iterations = 0.5, "completed", [(0, 0, 0.5)], 10

        if on_fold_end:
            on_fold_end(0, R())
            on_fold_end(1, R())
        return [(None, R()), (None, R())]

    def evaluate(self, models, dcfg):
        return self.score(self.embed_test(models, dcfg), dcfg)

    def embed_test(self, models, dcfg, **kwargs):
        return None

    def score(self, emb, dcfg):
        return {"fold0": {"map_at_r": 0.1}}

    def dataset(self, dcfg):
        class D:
            folds = [0, 1]
        return D()


def test_two_workers_share_the_repeats(tmp_path):
    cfg = assemble_config({"methods": ["contrastive"], "protocol": {"n_trials": 2, "n_repeats": 3, "n_folds": 2}})
    storage = st.create_storage(None, tmp_path)
    a, b = FakeBench(cfg), FakeBench(cfg)
    sa = SearchStage(a, storage, cfg.datasets[0], "contrastive")
    sb = SearchStage(b, storage, cfg.datasets[0], "contrastive")
    assert sa.step() == RAN and sb.step() == RAN
    assert sa.step() == DONE and sb.step() == DONE
    first = sa.trials()[0]
    assert first.params == {"pos_margin": 0.0, "neg_margin": 1.0}  # the defaults are the first trial
    ra = RepeatStage(a, storage, cfg.datasets[0], "contrastive", sa)
    rb = RepeatStage(b, storage, cfg.datasets[0], "contrastive", sb)
    statuses = [ra.step(), rb.step(), ra.step(), rb.step()]
    assert statuses == [RAN, RAN, RAN, DONE]
    units = sorted(k[2] for k in a.ran + b.ran if k[0] == "repeat")
    assert units == [0, 1, 2]
    assert len(ra.completed_units()) == 3
    assert all(t.state == TrialState.COMPLETE for t in ra.trials())


def test_seeds_are_stable():
    assert derive_seed(0, "repeat", "x", 1) == derive_seed(0, "repeat", "x", 1)
    assert derive_seed(0, "repeat", "x", 1) != derive_seed(0, "repeat", "x", 2)
    assert 0 <= derive_seed("anything") < 2**31


def test_every_sampler_kind_searches_a_registered_space():
    import optuna

    from benchmark.methods import get_method
    from benchmark.methods.search_space import suggest
    from benchmark.protocol.units import make_sampler

    space = get_method("cosface").search_space
    for kind in ("tpe", "gp", "random"):
        study = optuna.create_study(direction="maximize", sampler=make_sampler(kind, seed=0, n_startup_trials=2))
        for _ in range(4):
            trial = study.ask()
            values = suggest(trial, space)
            assert all(space[k].contains(v) for k, v in values.items())
            study.tell(trial, values["margin"])
        assert len(study.trials) == 4


def test_default_trial_failing_before_sampling_is_queued_again(tmp_path):
    """A worker killed between claiming the enqueued defaults and sampling them must not lose the defaults."""
    cfg = assemble_config({"methods": ["contrastive"], "protocol": {"n_trials": 2, "n_folds": 2}})
    storage = st.create_storage(None, tmp_path)
    bench = FakeBench(cfg)
    stage = SearchStage(bench, storage, cfg.datasets[0], "contrastive")
    stage.study.enqueue_trial({"pos_margin": 0.0, "neg_margin": 1.0}, user_attrs={"slot": 0})
    claimed = stage.study.ask()  # popped, then the worker dies before suggest()
    stage.study.tell(claimed, state=TrialState.FAIL)
    assert stage.step() == RAN
    retried = [t for t in stage.trials() if t.user_attrs.get("retry_of") == claimed.number]
    assert len(retried) == 1 and retried[0].params == {"pos_margin": 0.0, "neg_margin": 1.0}
    assert retried[0].user_attrs["slot"] == 0 and retried[0].state == TrialState.COMPLETE


def _stage(tmp_path, n_trials=3, n_repeats=2):
    cfg = assemble_config({"methods": ["contrastive"],
                            "protocol": {"n_trials": n_trials, "n_repeats": n_repeats, "n_folds": 2}})
    storage = st.create_storage(None, tmp_path)
    bench = FakeBench(cfg)
    return bench, storage, cfg, SearchStage(bench, storage, cfg.datasets[0], "contrastive")


def test_a_repeat_queued_twice_by_racing_workers_runs_once(tmp_path):
    bench, storage, cfg, search = _stage(tmp_path, n_trials=1, n_repeats=2)
    while search.step() != DONE:
        pass
    rep = RepeatStage(bench, storage, cfg.datasets[0], "contrastive", search)
    assert rep._ready()
    for unit in (0, 0, 1, 1):  # two workers both saw the queue empty and queued every unit
        rep.study.enqueue_trial({}, user_attrs={"unit": unit})
    while rep.step() != DONE:
        pass
    ran = sorted(k[2] for k in bench.ran if k[0] == "repeat")
    assert ran == [0, 1]
    dropped = [t for t in rep.trials() if "dropped" in t.user_attrs]
    assert len(dropped) >= 1 and all(t.state == TrialState.FAIL for t in dropped)
    assert sum(t.state == TrialState.COMPLETE for t in rep.trials()) == 2  # never a unit done twice
    assert sorted(rep.completed_units()) == [0, 1]


def test_a_search_trial_past_the_budget_is_dropped_before_any_work(tmp_path, monkeypatch):
    bench, storage, cfg, search = _stage(tmp_path, n_trials=2)
    assert search.step() == RAN  # slot 0, the defaults
    real_ask = search.study.ask

    def racing_ask(*args, **kwargs):  # another worker asks for the last slot at the same moment
        other = real_ask()
        other.set_user_attr(st.WORKER_ATTR, st.worker_id())
        other.set_user_attr(st.HEARTBEAT_ATTR, __import__("time").time())
        monkeypatch.setattr(search.study, "ask", real_ask)
        return real_ask(*args, **kwargs)

    monkeypatch.setattr(search.study, "ask", racing_ask)
    assert search.step() == BLOCKED  # its own trial was surplus; slot 1 is held by the (live) other worker
    states = {t.number: (t.state, t.user_attrs.get("dropped", "")) for t in search.trials()}
    assert states[2][0] == TrialState.FAIL and states[2][1].startswith("surplus")
    assert [k for k in bench.ran if k[0] == "search"] == [("search", search.name, 0)]
    assert search.slots(search.trials()) == {0: 0, 1: 1, 2: 2}


def test_racing_slots_sample_different_parameters(tmp_path):
    bench, storage, cfg, search = _stage(tmp_path, n_trials=4)
    assert search.step() == RAN
    params = []
    for slot in (1, 2, 3):
        assert search.step() == RAN
        params.append(tuple(sorted(search.trials()[-1].params.items())))
        assert search.trials()[-1].user_attrs["slot"] == slot
    assert len(set(params)) == 3
    assert search.step() == DONE


def test_a_result_after_a_takeover_is_late_and_not_counted(tmp_path):
    bench, storage, cfg, search = _stage(tmp_path, n_trials=1, n_repeats=1)
    while search.step() != DONE:
        pass
    rep = RepeatStage(bench, storage, cfg.datasets[0], "contrastive", search)
    real_train = bench.train_folds

    def slow_worker(*args, **kwargs):  # meanwhile another worker judged this one dead and failed its trial
        running = rep.trials(TrialState.RUNNING)[0]
        rep.study.tell(running.number, state=TrialState.FAIL)
        return real_train(*args, **kwargs)

    bench.train_folds = slow_worker
    assert rep.step() == RAN
    assert rep.completed_units() == {}
    assert len(rep.late_results()) == 1
    bench.train_folds = real_train
    while rep.step() != DONE:
        pass
    units = rep.completed_units()
    assert list(units) == [0] and units[0].user_attrs["retry_of"] == 0


def test_a_search_trials_slot_never_changes_when_others_record_theirs(tmp_path):
    """Workers record their slot after asking; that must not move the slots of trials asked meanwhile."""
    bench, storage, cfg, search = _stage(tmp_path, n_trials=5)
    search.study.enqueue_trial({}, user_attrs={"slot": 0})
    asked = [search.study.ask() for _ in range(4)]  # #0 is the queued defaults, popped first
    before = search.slots(search.trials())
    asked[1].set_user_attr("slot", before[asked[1].number])  # one worker records its slot
    assert search.slots(search.trials()) == before == {0: 0, 1: 1, 2: 2, 3: 3}


class ScriptedBench(FakeBench):
    """A FakeBench whose search slot k scores ``values[k]`` on every fold, and which counts test evaluations."""

    def __init__(self, cfg, values):
        super().__init__(cfg)
        self.values = values
        self.tested = []

    def train_folds(self, method, params, dcfg, key, **kwargs):
        self.ran.append(key)
        value = self.values[key[2]] if key[0] == "search" else 0.5

        class R:
            best_value, status, curve, iterations = value, "completed", [(0, 0, value)], 10

        for i in range(2):
            if kwargs.get("on_fold_end"):
                kwargs["on_fold_end"](i, R())
        return [(key, R()), (key, R())]

    def embed_test(self, models, dcfg, **kwargs):
        self.tested.append(models[0])
        return len(self.tested)

    def score(self, emb, dcfg):
        return {"concatenated": {"map_at_r": float(emb)}}


def _pooled_run(tmp_path, pooling, values):
    cfg = assemble_config({"methods": ["contrastive"], "protocol": {
        "n_trials": len(values), "n_repeats": 2, "n_folds": 2, "pooling": pooling, "pruner": "none"}})
    storage = st.create_storage(None, tmp_path)
    bench = ScriptedBench(cfg, values)
    search = SearchStage(bench, storage, cfg.datasets[0], "contrastive")
    repeats = RepeatStage(bench, storage, cfg.datasets[0], "contrastive", search)
    while search.step() != DONE:
        pass
    while repeats.step() != DONE:
        pass
    return bench, search, repeats


def test_with_best_trial_pooling_tests_each_leading_trial_and_pools_the_best_one(tmp_path):
    # slot 4 ties with slot 3: the lower slot is the best, so slot 4 does not lead and is not tested
    bench, search, repeats = _pooled_run(tmp_path, "with_best_trial", [0.3, 0.5, 0.4, 0.6, 0.6])
    searched = [k for k in bench.tested if k[0] == "search"]
    assert [k[2] for k in searched] == [0, 1, 3]  # the trials ahead of every finished one when they finished
    best = search.best_trial()
    assert search.slots(search.trials())[best.number] == 3
    pooled = repeats.pooled_units()
    assert sorted(pooled) == [-1, 0, 1]
    assert pooled[-1].number == best.number
    assert pooled[-1].user_attrs["test"] == {"concatenated": {"map_at_r": 3.0}}  # slot 3's own models, 3rd test
    assert [t.user_attrs["test"]["concatenated"]["map_at_r"] for _, t in sorted(pooled.items())[1:]] == [4.0, 5.0]


def test_repeats_pooling_never_tests_a_search_trial(tmp_path):
    bench, search, repeats = _pooled_run(tmp_path, "repeats", [0.3, 0.5, 0.4])
    assert all(k[0] == "repeat" for k in bench.tested) and len(bench.tested) == 2
    assert all("test" not in t.user_attrs for t in search.trials())
    assert sorted(repeats.pooled_units()) == [0, 1]


def test_a_best_trial_without_its_test_evaluation_is_refused_in_one_line(tmp_path):
    _, search, _ = _pooled_run(tmp_path, "repeats", [0.3, 0.5])
    cfg = assemble_config({"methods": ["contrastive"], "protocol": {
        "n_trials": 2, "n_repeats": 2, "n_folds": 2, "pooling": "with_best_trial", "pruner": "none"}})
    storage = st.create_storage(None, tmp_path)
    bench = ScriptedBench(cfg, [0.3, 0.5])
    again = SearchStage(bench, storage, cfg.datasets[0], "contrastive")
    with pytest.raises(ConfigError, match=r"best search trial of .*slot 1.*no test evaluation.*pooling: repeats"):
        RepeatStage(bench, storage, cfg.datasets[0], "contrastive", again).pooled_units()
