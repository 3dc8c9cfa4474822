"""A real Workbench on a small features dataset, for search tests that train for real in a fraction of a second."""

from __future__ import annotations

import numpy as np

from benchmark.protocol.run_config import assemble_config
from benchmark.protocol import storage as st
from benchmark.protocol.units import RepeatStage, SearchStage
from benchmark.protocol.workbench import Workbench

#: Iterations per epoch, epochs per fold and folds: a trial trains at most 2 x 4 x 5 = 40 iterations.
IPE, EPOCHS, FOLDS = 5, 4, 2
TRIAL_MAX = IPE * EPOCHS * FOLDS


def features_file(path, n_classes: int = 24, per_class: int = 6, dim: int = 8, seed: int = 0):
    """Overlapping classes (centres as spread as the noise), so that configurations score differently."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    labels = np.repeat(np.arange(n_classes), per_class)
    features = (centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32)
    np.savez(path, features=features, labels=labels)
    return path


def search_config(root, **protocol):
    return assemble_config({
        "name": "search", "methods": ["contrastive"], "device": "cpu",
        "datasets": [{"name": "features", "root": str(root)}], "model": {"embedding_dim": 4},
        "training": {"batch_size": 8, "m_per_class": 2, "iterations_per_epoch": IPE, "max_epochs": EPOCHS,
                     "val_interval": 1, "patience": 2, "optimizer": "adam", "lr_embedder": 0.01, "threads": 1},
        "protocol": {"n_folds": FOLDS, "n_trials": 10, "n_repeats": 1, "n_startup_trials": 2, "pruner": "none",
                     "poll_interval": 0.1, **protocol},
        "evaluation": {"recall_at": [1], "verification_far": None}})


def stages(tmp_path, **protocol) -> tuple[SearchStage, RepeatStage]:
    """The search and repeats of contrastive loss on the features dataset, on a journal storage under ``tmp_path``."""
    cfg = search_config(features_file(tmp_path / "features.npz"), **protocol)
    bench = Workbench(cfg, progress=False)
    storage = st.create_storage(None, tmp_path / "run")
    search = SearchStage(bench, storage, cfg.datasets[0], "contrastive")
    return search, RepeatStage(bench, storage, cfg.datasets[0], "contrastive", search)


def run_to_end(stage) -> None:
    """Step a stage until it is done (a single worker is never blocked)."""
    from benchmark.protocol.units import DONE, RAN

    while (status := stage.step()) != DONE:
        assert status == RAN, status
