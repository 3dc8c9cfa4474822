"""The raw-trunk row's embeddings: the trunk's own pooled output on the test images, no embedder, in either regime."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.constants import CONCATENATED
from benchmark.protocol.run_config import assemble_config
from benchmark.protocol.workbench import Workbench


@pytest.mark.parametrize("regime", ["frozen", "end_to_end"])
def test_raw_trunk_is_the_global_average_of_the_trunks_map_on_the_test_images(regime):
    cfg = assemble_config({
        "methods": ["contrastive"], "device": "cpu",
        "datasets": [{"name": "builtin", "options": {"num_classes": 16, "images_per_class": 8}}],
        "model": {"pretrained": False, "embedding_dim": 8},
        "frozen": {"grid": 2, "views": 1, "cache": False},
        "training": {"regime": regime, "batch_size": 8, "m_per_class": 4},
        "protocol": {"n_folds": 2}, "evaluation": {"verification_far": None}})
    bench = Workbench(cfg, progress=False)
    dcfg = cfg.datasets[0]
    emb = bench.raw_trunk_embeddings(dcfg)
    assert list(emb.query) == [CONCATENATED] and not emb.thresholds

    trunk = bench.models.trunk().eval()
    source = bench.dataset(dcfg).images or bench.dataset(dcfg).source  # the images, whatever the regime
    test = source.test.with_transform(source.eval_transform)
    with torch.no_grad():
        images = torch.stack([test[i][0] for i in range(len(test))])
        expected = trunk.feature_map(images).mean(dim=(2, 3)).numpy()
    got = emb.query[CONCATENATED]
    assert got.shape == (len(test), trunk.channels) and got.shape[1] != cfg.model.embedding_dim
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.array_equal(emb.query_labels, test.labels)
