"""Small frames shared by the reporting tests: fake results and hand-made aggregates."""

from __future__ import annotations

import math

import pandas as pd

from benchmark.constants import RESULT_COLUMNS
from benchmark.manifest import manifest_for
from benchmark.reporting.aggregate import AGGREGATE_COLUMNS, DESCRIPTION_COLUMNS, describe_rows

#: The manifest of the runs these frames stand for: 4 folds of 128 (512 concatenated), 3 repeats,
#: Recall@K for the In-shop table's K, verification at FAR 1e-3 (the harness's own descriptions).
MANIFEST = manifest_for(folds=4, repeats=3, embedding_dim=128, recall_at=[[1, 10, 20, 30, 40, 50]], far=1e-3)

#: fold values per repeat (4 folds) and the concatenated value, for precision_at_1.
FOLDS = {0: [0.50, 0.52, 0.54, 0.56], 1: [0.40, 0.42, 0.44, 0.46], 2: [0.60, 0.61, 0.62, 0.65]}
CONCAT = {0: 0.60, 1: 0.62, 2: 0.67}
#: per-repeat means of the folds above, computed by hand.
SEPARATED_BY_HAND = [0.53, 0.43, 0.62]


def fake_results(methods: tuple[str, ...] = ("triplet", "pretrained", "contrastive"),
                 dataset: str = "cub200") -> pd.DataFrame:
    """3 repeats x (4 folds + concatenated) of precision_at_1 for every method but pretrained
    (repeat 0 only); every method gets the same values, shifted by 0.01 per position."""
    rows = []
    for pos, method in enumerate(methods):
        display = {"pretrained": "Pretrained", "triplet": "Triplet",
                   "contrastive": "Contrastive"}.get(method, method)
        repeats = [0] if method == "pretrained" else [0, 1, 2]
        for r in repeats:
            for i, v in enumerate(FOLDS[r]):
                rows.append((method, display, dataset, r, f"fold{i}", "precision_at_1",
                             v + 0.01 * pos))
            rows.append((method, display, dataset, r, "concatenated", "precision_at_1",
                         CONCAT[r] + 0.01 * pos))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def make_agg(cells: list[tuple[str, str, str, str, float, float, int]],
             dataset: str = "cub200", manifest=MANIFEST) -> pd.DataFrame:
    """An aggregate frame from (method, display, embedding, metric, mean %, half-width %, n), its rows
    described by ``manifest``."""
    rows = []
    for method, display, emb, metric, mean, hw, n in cells:
        rows.append({"method": method, "display_name": display, "dataset": dataset,
                     "embedding": emb, "metric": metric, "mean": mean / 100,
                     "half_width": math.nan if hw is None or n == 1 else hw / 100,
                     "n": n, "values": ()})
    statistics = [c for c in AGGREGATE_COLUMNS if c not in DESCRIPTION_COLUMNS]
    return describe_rows(pd.DataFrame(rows, columns=statistics), manifest)


def paper_like_agg(dataset: str = "cub200", manifest=MANIFEST) -> pd.DataFrame:
    """Three methods in the papers' layout (CUB Table 1 values for Pretrained and Contrastive)."""
    metrics = ("precision_at_1", "r_precision", "map_at_r")
    table = {
        ("pretrained", "Pretrained", 1): ([51.05, 24.85, 14.21], [None] * 3,
                                          [50.54, 25.12, 14.53], [None] * 3),
        ("contrastive", "Contrastive", 10): ([68.13, 37.24, 26.53], [0.31, 0.28, 0.29],
                                             [59.73, 31.98, 21.18], [0.40, 0.29, 0.28]),
        ("multi_similarity", "MS", 10): ([65.04, 35.40, 24.70], [0.28, 0.12, 0.13],
                                         [57.60, 30.84, 20.15], [0.24, 0.13, 0.14]),
    }
    cells = []
    for (method, display, n), (cm, ch, sm, sh) in table.items():
        for metric, m, h in zip(metrics, cm, ch):
            cells.append((method, display, "concatenated", metric, m, h, n))
        for metric, m, h in zip(metrics, sm, sh):
            cells.append((method, display, "separated", metric, m, h, n))
    return make_agg(cells, dataset, manifest)
