"""The built-in dataset's calibration runs the harness's training and metrics on training classes only."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.protocol import workbench

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "calibrate_builtin.py"


@pytest.fixture(scope="module")
def calibration():
    spec = importlib.util.spec_from_file_location("calibrate_builtin", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the script runs
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_calibration_never_evaluates_a_test_class(calibration, monkeypatch):
    cfg = calibration.calibration_config(bias=0.9, methods=["contrastive"], num_classes=32, images_per_class=8,
                                         folds=2, iterations=4, val_every=2, pretrain_epochs=1)
    evaluated = []
    real = calibration.compute_metrics

    def spy(embeddings, labels, *args, **kwargs):
        evaluated.append(np.unique(labels))
        return real(embeddings, labels, *args, **kwargs)

    def no_test(*args, **kwargs):
        raise AssertionError("the calibration ran the test evaluation")

    monkeypatch.setattr(calibration, "compute_metrics", spy)
    monkeypatch.setattr(workbench.Workbench, "evaluate", no_test)
    monkeypatch.setattr(workbench.Workbench, "embed_test", no_test)  # (what the stages call)
    trained = []
    real_train = workbench.Workbench.train_folds

    def train_folds(self, method, params, dcfg, *args, **kwargs):
        trained.append((method, dcfg.key))
        return real_train(self, method, params, dcfg, *args, **kwargs)

    monkeypatch.setattr(workbench.Workbench, "train_folds", train_folds)
    rows = calibration.calibrate(cfg)

    assert [r.method for r in rows] == ["pretrained", "contrastive"]
    assert trained == [("contrastive", "builtin-bias0.9")]  # the harness's fold training, on the biased data
    for r in rows:
        for value in (r.val_map_at_r, r.clean_map_at_r, r.clean_precision_at_1):
            assert 0.0 <= value <= 1.0 and not math.isnan(value)
    splits = workbench.Workbench(cfg, progress=False).dataset(cfg.datasets[0]).splits
    assert len(evaluated) == 3 * 2  # pretrained (biased and unbiased) and the method (unbiased), 2 folds each
    for labels in evaluated:
        assert set(labels) <= set(splits.train_classes) and not set(labels) & set(splits.test_classes)
    assert {tuple(v) for v in evaluated} == {tuple(np.sort(f.val_classes)) for f in splits.folds}


def test_unbiased_rendering_only_when_biased(calibration):
    biased = calibration.calibration_config(bias=0.9, methods=["contrastive"], iterations=10, val_every=5)
    assert [d.key for d in biased.datasets] == ["builtin-bias0.9", calibration.CLEAN]
    assert biased.datasets[1].options["context_bias"] == 0.0
    assert biased.training.max_epochs * biased.training.iterations_per_epoch == 10
    assert [d.key for d in calibration.calibration_config(bias=0.0, methods=["contrastive"]).datasets] == \
        ["builtin-bias0"]
