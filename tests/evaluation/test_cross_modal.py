"""Cross-modal retrieval metrics and zero-shot accuracy against brute-force loops; the two-tower evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.data.paired import SecondModality
from benchmark.data.tensor_sets import TensorSet
from benchmark.evaluation.cross_modal import cross_modal_metrics, evaluate_two_towers, zero_shot_accuracy
from benchmark.models.two_tower import TwoTowerModel, VectorTower


def _cos(x, y) -> float:
    return float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))


def brute_force(q, ql, r, rl, ks):
    """Per query: references ranked by cosine similarity (ties by lower index), R = references of its class."""
    p1 = rp = mapr = 0.0
    recall = {k: 0.0 for k in ks}
    n = 0
    for i in range(len(q)):
        big_r = sum(1 for y in rl if y == ql[i])
        if big_r == 0:
            continue
        n += 1
        order = sorted(range(len(r)), key=lambda j: (-_cos(q[i], r[j]), j))
        rel = [rl[j] == ql[i] for j in order]
        p1 += rel[0]
        rp += sum(rel[:big_r]) / big_r
        hits, ap = 0, 0.0
        for rank in range(big_r):
            if rel[rank]:
                hits += 1
                ap += hits / (rank + 1)
        mapr += ap / big_r
        for k in ks:
            recall[k] += any(rel[:k])
    out = {"precision_at_1": p1 / n, "r_precision": rp / n, "map_at_r": mapr / n}
    out.update({f"recall_at_{k}": v / n for k, v in recall.items()})
    return out


def brute_zero_shot(q, ql, r, rl):
    right = 0
    classes = sorted(set(rl.tolist()))
    for i in range(len(q)):
        protos = {c: np.mean([r[j] / np.linalg.norm(r[j]) for j in range(len(r)) if rl[j] == c], axis=0)
                  for c in classes}
        best = max(classes, key=lambda c: (_cos(q[i], protos[c]), -c))
        right += best == ql[i]
    return right / len(q)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_modal_metrics_match_brute_force_in_both_directions(seed):
    rng = np.random.default_rng(seed)
    qa, la = rng.normal(size=(30, 5)), rng.integers(0, 6, 30)
    qb, lb = rng.normal(size=(14, 5)), rng.integers(0, 6, 14)
    lb[:6] = np.arange(6)  # every class in B
    for q, ql, r, rl in ((qa, la, qb, lb), (qb, lb, qa, la)):
        got = cross_modal_metrics(q, ql, r, rl, recall_at=(1, 2, 4))
        want = brute_force(q, ql, r, rl, (1, 2, 4))
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-6), key
        assert got["zero_shot_accuracy"] == pytest.approx(brute_zero_shot(q, ql, r, rl))


def test_a_query_identical_to_a_reference_is_not_excluded():
    """Query and reference sets are different modalities: an identical vector is a hit, not the query itself."""
    x = np.eye(4, dtype=np.float32)
    got = cross_modal_metrics(x, np.arange(4), x.copy(), np.arange(4))
    assert got["precision_at_1"] == 1.0 and got["map_at_r"] == 1.0 and got["zero_shot_accuracy"] == 1.0


def test_zero_shot_uses_class_prototypes_not_nearest_items():
    # the query's nearest single reference is class 1, but class 0's prototype is nearer
    q = np.array([[1.0, 0.0]])
    r = np.array([[0.9, 0.45], [0.9, -0.45], [1.0, 0.02], [-1.0, 0.5]])
    rl = np.array([0, 0, 1, 1])
    assert zero_shot_accuracy(q, np.array([0]), r, rl) == 1.0
    assert cross_modal_metrics(q, np.array([0]), r, rl)["precision_at_1"] == 0.0


def test_evaluate_two_towers_gives_both_directions_separated_and_concatenated():
    torch.manual_seed(0)
    a = TensorSet(torch.randn(12, 6, 1, 1), np.repeat(np.arange(4), 3))
    second = SecondModality("image", "text", TensorSet(torch.randn(4, 5), np.arange(4)),
                            TensorSet(torch.randn(8, 5), np.repeat(np.arange(4), 2)))

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 3)

        def forward(self, x):
            return self.lin(x.flatten(1))

    models = [TwoTowerModel(Flat(), VectorTower(5, 3, hidden=4)) for _ in range(2)]
    out = evaluate_two_towers(models, a, second, device=torch.device("cpu"), recall_at=(1, 2))
    assert set(out) == {"image-to-text", "text-to-image"}
    for direction in out.values():
        assert set(direction) == {"fold0", "fold1", "concatenated"}
    ea = models[0].embed_a(a.values).detach().numpy()
    eb = models[0].embed_b(second.test.values).detach().numpy()
    want = brute_force(eb, second.test.labels, ea, a.labels, (1, 2))
    assert out["text-to-image"]["fold0"]["map_at_r"] == pytest.approx(want["map_at_r"], abs=1e-6)
