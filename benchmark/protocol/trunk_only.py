"""``dml-bench evaluate --config``: a trunk evaluated as it is, no training and no search.

Every dataset of the config goes through the run's test protocol (the same test set, query/gallery split,
Recall@K, verification FAR and clustering keys) with the trunk's pooled output as the embedding (a features
dataset's features as given): the "Raw trunk" row of every leaderboard, alone. The run folder gets the
result files reporting reads (``results.csv``, ``manifest.json``, ``config.resolved.yaml``), so that
``dml-bench report`` renders its tables, and with ``protocol.save: embeddings`` its embeddings.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.config import BenchmarkConfig
from benchmark.constants import CONCATENATED, RAW_TRUNK, RESULT_COLUMNS
from benchmark.io import atomic_write
from benchmark.manifest import RunManifest, write_manifest
from benchmark.metric_catalog import describe_metrics
from benchmark.protocol.artifacts import ArtifactStore
from benchmark.protocol.export import raw_trunk_display
from benchmark.protocol.workbench import Workbench


def evaluate_trunk(cfg: BenchmarkConfig, run_dir: Path, bench: Workbench) -> list[str]:
    """Evaluate the raw trunk on every dataset of ``cfg`` into ``run_dir`` (prepared by the caller); one line
    per dataset for the terminal."""
    rows, dims, lines = [], {}, []
    store = ArtifactStore(run_dir, cfg.protocol.save)
    for dcfg in cfg.datasets:
        emb = bench.raw_trunk_embeddings(dcfg)
        test = bench.score(emb, dcfg)
        dim = int(emb.query[CONCATENATED].shape[1])
        dims.setdefault(CONCATENATED, dim)
        display = raw_trunk_display(dim)
        for embedding, metrics in test.items():
            for metric, value in metrics.items():
                if metric != "num_queries":
                    rows.append(dict(method=RAW_TRUNK, display_name=display, dataset=dcfg.key, repeat=0,
                                     embedding=embedding, metric=metric, value=value))
        if store.mode != "none":
            store.save(dataset=dcfg.key, method=RAW_TRUNK, repeat=0, emb=emb, meta={"seed": cfg.seed})
        lines.append(f"[raw trunk] {dcfg.key}: {dim}-d, test MAP@R {test[CONCATENATED]['map_at_r']:.4f}")
    metrics = describe_metrics(recall_at=[k for d in cfg.datasets for k in cfg.recall_at_for(d)],
                               far=cfg.evaluation.verification_far, clustering=cfg.evaluation.clustering)
    write_manifest(run_dir, RunManifest(folds=1, repeats=1, dims=dims, metrics=metrics))
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    atomic_write(run_dir / "results.csv", lambda p: frame.to_csv(p, index=False))
    return lines
