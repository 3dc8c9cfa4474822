"""Unit checkpoints through the workbench: a unit stopped mid-fold resumes to the uninterrupted unit's folds.

End-to-end (the smoke preset's small CNN trains) and frozen regime (cached trunk outputs, an embedder),
stopped by a stop request (what SIGTERM does) in the second fold; the new attempt takes fold 0 from its
checkpoint, resumes fold 1 where it stopped, replays the validations, and gives identical models and results.
"""

from __future__ import annotations

import pytest
import torch

from benchmark.protocol.run_config import load_run_config
from benchmark.protocol.unit_checkpoint import TRAINING_FILE, UNIT_FILE, discard, unit_folder
from benchmark.protocol.workbench import Workbench
from tests.training.stops import Stop

KEY = ("repeat", "builtin::contrastive::repeats", 0)
SHORT = ["training.max_epochs=3", "training.iterations_per_epoch=4"]


@pytest.mark.parametrize("regime", ["end_to_end", "frozen"])
def test_stopped_unit_resumes_to_the_same_folds(regime, tmp_path, stop_at_call):
    extra = ["training.regime=frozen", "frozen.views=2"] if regime == "frozen" else []
    bench = Workbench(load_run_config(preset="smoke", overrides=[*SHORT, *extra]), progress=False)
    dcfg = bench.cfg.datasets[0]
    straight = bench.train_folds("contrastive", {}, dcfg, KEY)

    bench.checkpoint_root = tmp_path / "checkpoints"
    folder = unit_folder(bench.checkpoint_root, KEY)
    stop_at_call(12 + 6)  # fold 1 (12 iterations per fold), in its second epoch
    with pytest.raises(Stop):
        bench.train_folds("contrastive", {}, dcfg, KEY)
    assert sorted(p.name for p in folder.iterdir()) == ["fold-0.pt", TRAINING_FILE, UNIT_FILE]
    stop_at_call(None)
    seen = []
    resumed = bench.train_folds("contrastive", {}, dcfg, KEY,
                                on_validation=lambda *a: seen.append(a), on_fold_end=lambda i, r: seen.append(i))
    # every validation reported to the new attempt, in order, the replayed ones first
    expected = []
    for i, (_, r) in enumerate(straight):
        expected += [(i, *point) for point in r.curve] + [i]
    assert seen == expected
    for (m1, r1), (m2, r2) in zip(straight, resumed):
        assert r1 == r2
        assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert (folder / "fold-1.pt").is_file() and not (folder / TRAINING_FILE).exists()
    discard(bench.checkpoint_root, KEY)
    assert not bench.checkpoint_root.exists()  # nothing left once the unit is recorded


def test_a_checkpoint_of_another_configuration_is_discarded(tmp_path, stop_at_call):
    bench = Workbench(load_run_config(preset="smoke", overrides=SHORT), progress=False)
    dcfg = bench.cfg.datasets[0]
    bench.checkpoint_root = tmp_path / "checkpoints"
    stop_at_call(14)
    with pytest.raises(Stop):
        bench.train_folds("contrastive", {"pos_margin": 0.1}, dcfg, KEY)
    stop_at_call(None)
    folder = unit_folder(bench.checkpoint_root, KEY)
    assert (folder / "fold-0.pt").is_file()
    seen = []
    bench.train_folds("contrastive", {"pos_margin": 0.2}, dcfg, KEY, on_fold_end=lambda i, r: seen.append(i))
    assert seen == [0, 1]  # both folds trained again: nothing of the other configuration's used
