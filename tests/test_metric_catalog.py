"""The metric catalogue: every metric the evaluation reports is described, with the right direction."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.constants import DIVERGED_METRIC
from benchmark.errors import BenchmarkError
from benchmark.evaluation.metrics import compute_metrics
from benchmark.evaluation.uncertainty import norm_p1_correlation
from benchmark.evaluation.verification import verification_metrics
from benchmark.metric_catalog import (
    CORRELATION,
    COUNT,
    FRACTION,
    MetricInfo,
    describe_metrics,
    far_text,
    tar_key,
)


@pytest.mark.parametrize("far, text, key", [(1e-3, "1e-3", "tar_at_far_1e-03"), (0.01, "1e-2", "tar_at_far_1e-02"),
                                            (5e-4, "5e-4", "tar_at_far_5e-04")])
def test_far_label_and_key(far, text, key):
    assert far_text(far) == text and tar_key(far) == key
    assert describe_metrics(recall_at=[1], far=far)[key].label == f"TAR@FAR={text}"


def test_every_metric_the_evaluation_reports_is_described():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    y = np.repeat(np.arange(12), 5)
    reported = {**compute_metrics(x, y, recall_at=(1, 4)),
                **verification_metrics(x, y, threshold=0.5, far=1e-2),
                **norm_p1_correlation(x, y)}
    reported.pop("num_queries")  # a count of scored queries, not written to results.csv
    described = describe_metrics(recall_at=[1, 4], far=1e-2)
    assert set(reported) <= set(described)
    assert all(described[m].unit == FRACTION for m in reported if not m.startswith("kappa"))


def test_directions_and_units():
    d = describe_metrics(recall_at=[1, 10], far=1e-3)
    assert [d[m].label for m in ("precision_at_1", "r_precision", "map_at_r", "recall_at_10")] == \
        ["P@1", "RP", "MAP@R", "R@10"]
    higher = {m for m, info in d.items() if info.higher_is_better}
    assert {"precision_at_1", "map_at_r", "recall_at_10", "roc_auc", "tar_at_far_1e-03"} <= higher
    assert d["far_at_threshold"] == MetricInfo("test FAR (target 1e-3)", FRACTION, False)  # a false-accept rate
    assert d[DIVERGED_METRIC].unit == COUNT and not d[DIVERGED_METRIC].higher_is_better
    assert d["kappa_p1_spearman"].unit == CORRELATION
    assert not {"roc_auc", "far_at_threshold"} & set(describe_metrics(recall_at=[1], far=None))
    with pytest.raises(BenchmarkError, match="unit"):
        MetricInfo("x", "percent", True)
