"""What every metric of a run's result files is: its label, unit and which direction is better.

One table for every layer: the evaluation names its verification metric with :func:`tar_key`, the
protocol describes a run's metrics with :func:`describe_metrics` in its manifest
(:mod:`benchmark.manifest`), and reporting prints the labels and ranks by the directions it reads
there. A metric's direction is stated here, never guessed from its name.

Units: ``fraction`` (in [0, 1], printed in percent), ``correlation`` (in [−1, 1]) and ``count``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from benchmark.constants import CONCATENATED, DIVERGED_METRIC
from benchmark.errors import BenchmarkError

FRACTION, CORRELATION, COUNT = "fraction", "correlation", "count"
UNITS = (FRACTION, CORRELATION, COUNT)
#: The metric of ``curves.csv``: validation MAP@R along training.
VALIDATION_METRIC = "val_map_at_r"


@dataclass(frozen=True)
class MetricInfo:
    """How a metric is printed (``label``), in what ``unit``, and whether a larger value is better."""

    label: str
    unit: str
    higher_is_better: bool

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise BenchmarkError(f"metric unit must be one of {', '.join(UNITS)}, got {self.unit!r}")


def far_text(far: float) -> str:
    """A false-accept rate as the papers print it: ``1e-3`` for 0.001."""
    mantissa, exponent = f"{far:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def tar_key(far: float) -> str:
    """The metric name of the true-accept rate at ``far``: ``tar_at_far_1e-03`` for 1e-3."""
    return f"tar_at_far_{far:.0e}"


def recall_key(k: int) -> str:
    """The metric name of Recall@``k``."""
    return f"recall_at_{k}"


#: The metrics every test evaluation reports (``benchmark.evaluation.metrics.compute_metrics``).
RETRIEVAL = {
    "precision_at_1": MetricInfo("P@1", FRACTION, True),
    "r_precision": MetricInfo("RP", FRACTION, True),
    "map_at_r": MetricInfo("MAP@R", FRACTION, True),
}
#: Cross-modal runs (``benchmark.evaluation.cross_modal``): each query's class by the nearest class prototype
#: of the other modality.
CROSS_MODAL = {"zero_shot_accuracy": MetricInfo("Zero-shot acc.", FRACTION, True)}
#: The protocol's own rows: folds whose training diverged (``results.csv``) and the validation curve.
PROTOCOL = {
    DIVERGED_METRIC: MetricInfo("Diverged folds", COUNT, False),
    VALIDATION_METRIC: MetricInfo("validation MAP@R", FRACTION, True),
}
#: The correlation of the embedding norm with per-query P@1 (``benchmark.evaluation.uncertainty``).
UNCERTAINTY = {
    "kappa_p1_spearman": MetricInfo("Spearman(norm, P@1)", CORRELATION, True),
    "kappa_p1_pearson": MetricInfo("Pearson(norm, P@1)", CORRELATION, True),
}


#: The clustering metrics of k-means with k = number of test classes (``benchmark.evaluation.clustering``),
#: reported when ``evaluation.clustering`` is on (or added afterwards by ``dml-bench evaluate RUN``).
CLUSTERING = {
    "nmi": MetricInfo("NMI", FRACTION, True),
    "ami": MetricInfo("AMI", FRACTION, True),
    "f1": MetricInfo("F1", FRACTION, True),
}


def verification_metrics(far: float) -> dict[str, MetricInfo]:
    """ROC AUC, the TAR at ``far`` (threshold from validation) and the FAR that threshold gives on test."""
    return {
        "roc_auc": MetricInfo("ROC AUC", FRACTION, True),
        tar_key(far): MetricInfo(f"TAR@FAR={far_text(far)}", FRACTION, True),
        "far_at_threshold": MetricInfo(f"test FAR (target {far_text(far)})", FRACTION, False),
    }


def describe_metrics(*, recall_at: Iterable[int], far: Optional[float],
                     clustering: bool = False) -> dict[str, MetricInfo]:
    """Every metric a test evaluation with these settings can report, and the protocol's own rows.

    ``recall_at``: the K of Recall@K (all datasets' together); ``far``: the verification false-accept
    rate, None when verification is off; ``clustering``: NMI, AMI and F1 (``evaluation.clustering``).
    """
    out = dict(RETRIEVAL)
    out.update({recall_key(int(k)): MetricInfo(f"R@{int(k)}", FRACTION, True) for k in sorted(set(recall_at))})
    if far is not None:
        out.update(verification_metrics(far))
    if clustering:
        out.update(CLUSTERING)
    out.update(UNCERTAINTY)
    out.update(CROSS_MODAL)
    out.update(PROTOCOL)
    return out


_RECALL = re.compile(r"^recall_at_([1-9][0-9]*)$")
_TAR = re.compile(r"^tar_at_far_([0-9]e[-+][0-9]+)$")


def recall_k(metric: str) -> Optional[int]:
    """K of a ``recall_at_K`` metric name, None for any other name."""
    m = _RECALL.match(metric)
    return int(m.group(1)) if m else None


def describe_metric(metric: str) -> Optional[MetricInfo]:
    """The description of one metric name, any K of Recall@K and any FAR of TAR@FAR included; None when
    the name is no metric a test evaluation reports (``dml-bench evaluate --metrics`` checks names with it)."""
    for table in (RETRIEVAL, CLUSTERING, UNCERTAINTY, PROTOCOL):
        if metric in table:
            return table[metric]
    k = recall_k(metric)
    if k is not None:
        return MetricInfo(f"R@{k}", FRACTION, True)
    m = _TAR.match(metric)
    if m:
        return verification_metrics(float(m.group(1)))[metric]
    if metric in ("roc_auc", "far_at_threshold"):  # (the test FAR's label names the run's FAR: its manifest's)
        return verification_metrics(1e-3)[metric]
    return None


#: Why the concatenated embedding has no TAR@FAR and no test FAR (see
#: ``benchmark.evaluation.embed.evaluate_models``): the threshold needs validation classes.
CONCATENATION_HAS_NO_THRESHOLD = (
    "the threshold for the target FAR is chosen on a fold model's own validation classes, and the "
    "concatenation of the fold models has none (each fold's validation classes are the other folds' "
    "training classes), so the concatenation gets ROC AUC only")


#: Per-category metrics (a dataset whose test images have a category: SOP's super-classes, a df.csv's
#: ``category``): ``<metric>@<category>``, the queries of one category ranked against the whole test set or
#: gallery, described as the metric itself (``MAP@R [bicycle]``).
CATEGORY_SEP = "@"
CATEGORY_METRICS = ("precision_at_1", "map_at_r")


def category_key(metric: str, category: object) -> str:
    """The name of ``metric`` over the queries of ``category``: ``map_at_r@bicycle``."""
    return f"{metric}{CATEGORY_SEP}{category}"


def split_category(name: str) -> tuple[str, Optional[str]]:
    """``(metric, category)`` of a per-category metric name, ``(name, None)`` for any other."""
    metric, sep, category = str(name).partition(CATEGORY_SEP)
    return (metric, category) if sep and metric in CATEGORY_METRICS else (str(name), None)


def is_threshold_metric(metric: str) -> bool:
    """Whether ``metric`` needs the verification threshold chosen on validation (TAR@FAR, test FAR)."""
    return metric == "far_at_threshold" or str(metric).startswith("tar_at_far_")


def missing_reason(embedding: str, metric: str) -> Optional[str]:
    """Why ``metric`` is never reported for ``embedding`` by design, or None when it should be there."""
    if embedding == CONCATENATED and is_threshold_metric(metric):
        return CONCATENATION_HAS_NO_THRESHOLD
    return None
