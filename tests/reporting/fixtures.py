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
