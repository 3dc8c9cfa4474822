"""Run folders written by hand for the report tests: new (with cost) and old (results and manifest only)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from benchmark.constants import COST_COLUMNS, CURVE_COLUMNS, RESULT_COLUMNS, TRIAL_COLUMNS
from benchmark.manifest import manifest_for, write_manifest

#: Per method: the concatenated MAP@R of 4 repeats (fold values are these minus 0.02).
REPEATS = {"contrastive": [0.30, 0.31, 0.32, 0.31], "triplet": [0.29, 0.30, 0.33, 0.31],
           "ntxent": [0.20, 0.21, 0.22, math.nan]}


def write_run_folder(run_dir: Path, *, old: bool = False,
                     datasets: tuple[str, ...] = ("cub200",)) -> Path:
    """A run folder with manifest.json and results.csv (+ trials.csv, curves.csv, cost.csv and the config
    unless ``old``): one fold model of 128. Every dataset gets the same values, shifted by 0.05 for the
    second one."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(run_dir, manifest_for(folds=1, repeats=4, embedding_dim=128, recall_at=[[1]], far=1e-3))
    displays = {"contrastive": "Contrastive", "triplet": "Triplet", "ntxent": "NT-Xent"}
    rows = []
    for k, dataset in enumerate(datasets):
        rows.append(("pretrained", "Pretrained", dataset, 0, "concatenated", "map_at_r", 0.15))
        rows.append(("pretrained", "Pretrained", dataset, 0, "fold0", "map_at_r", 0.15))
        for method, values in REPEATS.items():
            shift = 0.05 * k * (1 if method == "ntxent" else -1)
            for r, v in enumerate(values):
                rows.append((method, displays[method], dataset, r, "concatenated", "map_at_r",
                             v + shift))
                rows.append((method, displays[method], dataset, r, "fold0", "map_at_r",
                             v + shift - 0.02))
    pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).to_csv(run_dir / "results.csv", index=False)
    if old:
        return run_dir
    trials, cost, curves = [], [], []
    for dataset in datasets:
        for method in REPEATS:
            for t in range(5):
                # NT-Xent's best (its first trial: all values tie) sits at the top of its range
                params = ({"margin": 0.5} if method != "ntxent"
                          else {"temperature": 50.0 if t == 0 else 0.01})
                trials.append((method, dataset, t, "COMPLETE", 0.2 + 0.01 * t * (method == "triplet"),
                               json.dumps(params), "[0.2]", "search", 10.0, 200.0, t, "[]", ""))
            for unit in range(4):
                cost.append(("repeats", method, dataset, unit, 5.0, 100.0))
                curves += [(method, dataset, unit, 0, e, 10 * e, "val_map_at_r", 0.1 + 0.01 * e)
                           for e in range(1, 4)]
        cost.append(("test", "pretrained", dataset, 0, 0.5, 0.0))
    pd.DataFrame(trials, columns=list(TRIAL_COLUMNS)).to_csv(run_dir / "trials.csv", index=False)
    pd.DataFrame(cost, columns=list(COST_COLUMNS)).to_csv(run_dir / "cost.csv", index=False)
    pd.DataFrame(curves, columns=list(CURVE_COLUMNS)).to_csv(run_dir / "curves.csv", index=False)
    (run_dir / "config.resolved.yaml").write_text("training: {batch_size: 32}\n"
                                                  "datasets: [{name: cub200}, {name: cars196}]\n",
                                                  encoding="utf-8")
    return run_dir


#: The In-shop-like run of :func:`write_inshop_run_folder`: method → (display name, base value).
INSHOP_METHODS = {"pretrained": ("Pretrained", 0.50), "multi_similarity": ("MS", 0.70),
                  "dro_topk": ("DRO-TopK", 0.72), "lifted_structure": ("Lifted Structure", 0.66)}
#: Recall@K of the In-shop papers' table.
INSHOP_KS = (1, 10, 20, 30, 40, 50)


def write_inshop_run_folder(run_dir: Path, *, dataset: str = "inshop") -> Path:
    """A run folder (manifest.json and results.csv) as the reality check writes for In-shop: 4 folds of 128,
    3 repeats (Pretrained once), P@1/RP/MAP@R, Recall@K for the papers' K, and verification at FAR 1e-3
    (ROC AUC for every embedding; TAR@FAR and test FAR for the fold models only, as the harness reports).
    Values differ per repeat and fold, so every column has intervals and a significance group."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(run_dir, manifest_for(folds=4, repeats=3, embedding_dim=128, recall_at=[list(INSHOP_KS)],
                                         far=1e-3))
    metrics = ["precision_at_1", "r_precision", "map_at_r", *(f"recall_at_{k}" for k in INSHOP_KS), "roc_auc"]
    rows = []
    for method, (display, base) in INSHOP_METHODS.items():
        for r in range(1 if method == "pretrained" else 3):
            for emb in ["concatenated", *(f"fold{i}" for i in range(4))]:
                fold = 0 if emb == "concatenated" else int(emb[4:]) + 1
                for j, metric in enumerate(metrics):
                    value = min(0.99, base + 0.013 * r + 0.004 * fold + 0.02 * j - (0.3 if j in (1, 2) else 0))
                    rows.append((method, display, dataset, r, emb, metric, value))
                if emb != "concatenated":
                    rows.append((method, display, dataset, r, emb, "tar_at_far_1e-03", base - 0.2 + 0.01 * r))
                    rows.append((method, display, dataset, r, emb, "far_at_threshold", 0.0011 + 0.0001 * fold))
    pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).to_csv(run_dir / "results.csv", index=False)
    return run_dir
