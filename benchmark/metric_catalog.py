"""What every metric of a run's result files is: its label, unit and which direction is better.

One table for every layer: the evaluation names its verification metric with :func:`tar_key`, the
protocol describes a run's metrics with :func:`describe_metrics` in its manifest
(:mod:`benchmark.manifest`), and reporting prints the labels and ranks by the directions it reads
there. A metric's direction is stated here, never guessed from its name.

Units: ``fraction`` (in [0, 1], printed in percent), ``correlation`` (in [−1, 1]) and ``count``.
"""

from __future__ import annotations

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


def verification_metrics(far: float) -> dict[str, MetricInfo]:
    """ROC AUC, the TAR at ``far`` (threshold from validation) and the FAR that threshold gives on test."""
    return {
        "roc_auc": MetricInfo("ROC AUC", FRACTION, True),
        tar_key(far): MetricInfo(f"TAR@FAR={far_text(far)}", FRACTION, True),
        "far_at_threshold": MetricInfo(f"test FAR (target {far_text(far)})", FRACTION, False),
    }


def describe_metrics(*, recall_at: Iterable[int], far: Optional[float]) -> dict[str, MetricInfo]:
    """Every metric a test evaluation with these settings can report, and the protocol's own rows.

    ``recall_at``: the K of Recall@K (all datasets' together); ``far``: the verification false-accept
    rate, None when verification is off.
    """
    out = dict(RETRIEVAL)
    out.update({recall_key(int(k)): MetricInfo(f"R@{int(k)}", FRACTION, True) for k in sorted(set(recall_at))})
    if far is not None:
        out.update(verification_metrics(far))
    out.update(UNCERTAINTY)
    out.update(CROSS_MODAL)
    out.update(PROTOCOL)
    return out


#: Why the concatenated embedding has no TAR@FAR and no test FAR (see
#: ``benchmark.evaluation.embed.evaluate_models``): the threshold needs validation classes.
CONCATENATION_HAS_NO_THRESHOLD = (
    "the threshold for the target FAR is chosen on a fold model's own validation classes, and the "
    "concatenation of the fold models has none (each fold's validation classes are the other folds' "
    "training classes), so the concatenation gets ROC AUC only")


def is_threshold_metric(metric: str) -> bool:
    """Whether ``metric`` needs the verification threshold chosen on validation (TAR@FAR, test FAR)."""
    return metric == "far_at_threshold" or str(metric).startswith("tar_at_far_")


def missing_reason(embedding: str, metric: str) -> Optional[str]:
    """Why ``metric`` is never reported for ``embedding`` by design, or None when it should be there."""
    if embedding == CONCATENATED and is_threshold_metric(metric):
        return CONCATENATION_HAS_NO_THRESHOLD
    return None
