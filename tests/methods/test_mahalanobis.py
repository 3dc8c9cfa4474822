"""Mahalanobis metric learning: frozen trunk, only the embedder trains, the loss and the distance by hand."""

from __future__ import annotations

import itertools

import pytest
import torch

from benchmark.config import TrainingConfig
from benchmark.methods import MethodContext, get_method
from benchmark.methods.library.mahalanobis import FrozenTrunk
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN
from benchmark.training.trainer import make_optimizer

EMBEDDING = 8
CTX = MethodContext(num_classes=4, embedding_dim=EMBEDDING)


def _model(freeze_bn: bool = False) -> tuple[EmbeddingModel, SmallCNN]:
    torch.manual_seed(0)
    trunk = SmallCNN(width=4)
    return EmbeddingModel(trunk, embedding_dim=EMBEDDING, freeze_bn=freeze_bn), trunk


def _clone_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_spec():
    spec = get_method("mahalanobis")
    assert spec.display_name == "Mahalanobis" and spec.source == "Xing et al., NIPS 2002"
    assert spec.defaults == {"pos_margin": 0.0, "neg_margin": 4.0}
    assert not spec.has_parameters
    distance = spec.create(CTX).loss.distance
    assert not distance.normalize_embeddings and distance.p == 2 and distance.power == 1


@pytest.mark.parametrize("freeze_bn", [False, True])
def test_training_step_changes_only_the_embedder(freeze_bn):
    method = get_method("mahalanobis").create(CTX)
    model, trunk = _model(freeze_bn)
    model = method.configure_model(model)
    assert isinstance(model.trunk, FrozenTrunk) and model.trunk.trunk is trunk
    assert method.configure_model(model).trunk.trunk is trunk  # idempotent
    assert all(not p.requires_grad for p in model.trunk.parameters())
    assert all(p.requires_grad for p in model.embedder.parameters())

    cfg = TrainingConfig(optimizer="sgd", lr_trunk=0.1, lr_embedder=0.1, momentum=0.0)
    optimizer = make_optimizer(model, method, cfg)
    assert [g["name"] for g in optimizer.param_groups] == ["embedder"]

    trunk_before, embedder_before = _clone_state(model.trunk), _clone_state(model.embedder)
    model.train()
    assert model.training and not any(m.training for m in model.trunk.modules())
    torch.manual_seed(1)
    x = torch.randn(8, 3, 32, 32) * 3 + 1  # far from the BN statistics: train-mode BN would move them
    y = torch.arange(4).repeat_interleave(2)
    loss = method.training_step(model, x, y, torch.arange(8))
    assert loss.item() > 0
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    assert all(p.grad is None for p in model.trunk.parameters())
    optimizer.step()

    for k, v in model.trunk.state_dict().items():  # weights and BN running stats / counters
        assert torch.equal(v, trunk_before[k]), k
    assert not torch.equal(model.embedder.weight, embedder_before["weight"])


def test_unfrozen_trunk_would_move_its_bn_statistics():
    """Control for the test above: the same forward in train mode without the hook changes BN stats."""
    model, _ = _model(freeze_bn=False)
    before = _clone_state(model.trunk)
    model.train()
    torch.manual_seed(1)
    model(torch.randn(8, 3, 32, 32) * 3 + 1)
    assert any(not torch.equal(v, before[k]) for k, v in model.trunk.state_dict().items())


def _by_hand(emb: torch.Tensor, labels: list[int], pos_margin: float, neg_margin: float) -> float:
    pos, neg = [], []
    for i, j in itertools.permutations(range(len(labels)), 2):
        d = sum((a - b) ** 2 for a, b in zip(emb[i].tolist(), emb[j].tolist())) ** 0.5
        if labels[i] == labels[j]:
            pos.append(max(0.0, d - pos_margin) ** 2)
        else:
            neg.append(max(0.0, neg_margin - d))
    pos_nz, neg_nz = [v for v in pos if v > 0], [v for v in neg if v > 0]
    return (sum(pos_nz) / len(pos_nz) if pos_nz else 0.0) + (sum(neg_nz) / len(neg_nz) if neg_nz else 0.0)


@pytest.mark.parametrize("pos_margin,neg_margin", [(0.0, 4.0), (0.5, 3.0), (0.0, 0.1)])
def test_loss_matches_the_formula(pos_margin, neg_margin):
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 4.0], [3.0, 2.0], [-2.0, 1.0], [-2.0, 1.5]],
                       dtype=torch.float64)  # norms differ: normalisation would change every distance
    labels = [0, 0, 1, 1, 2, 2]
    method = get_method("mahalanobis").create(CTX, {"pos_margin": pos_margin, "neg_margin": neg_margin})
    value = method(emb, torch.tensor(labels)).item()
    assert value == pytest.approx(_by_hand(emb, labels, pos_margin, neg_margin), rel=1e-9, abs=1e-12)


def test_default_loss_value_written_out():
    """Two positives at distance 1 and 2, negatives at 3 (active under neg_margin 4) and 5 (inactive)."""
    emb = torch.tensor([[0.0], [1.0], [3.0], [5.0]], dtype=torch.float64)
    # pairs: (0,1) same d=1; (2,3) same d=2; (0,2) d=3, (0,3) d=5, (1,2) d=2, (1,3) d=4: negatives
    labels = torch.tensor([0, 0, 1, 1])
    value = get_method("mahalanobis").create(CTX)(emb, labels).item()
    pos = (1.0 + 4.0) / 2  # Xing's similar term d² averaged (ordered pairs count twice: same mean)
    neg = ((4 - 3) + (4 - 2)) / 2  # hinge on the two negatives closer than 4, d=4 and d=5 give 0
    assert value == pytest.approx(pos + neg)


def test_learnt_distance_is_the_mahalanobis_distance_of_the_features():
    method = get_method("mahalanobis").create(CTX)
    model, _ = _model()
    model = method.configure_model(model).train()
    optimizer = make_optimizer(model, method, TrainingConfig(optimizer="sgd", lr_embedder=0.1, momentum=0.0))
    torch.manual_seed(2)
    x = torch.randn(5, 3, 32, 32)
    initial = model.embedder.weight.detach().clone()
    for _ in range(3):  # learn L a little
        loss = method.training_step(model, x, torch.tensor([0, 0, 1, 1, 2]), torch.arange(5))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert not torch.equal(model.embedder.weight, initial)
    model.eval()
    with torch.no_grad():
        features = model.trunk(x).double()
        weight = model.embedder.weight.double()
        emb = model.embedder.double()(features)
        dist = method.loss.distance(emb)
    a = weight.T @ weight  # A = LᵀL
    assert torch.linalg.eigvalsh(a).min() > -1e-10  # positive semi-definite
    for i, j in itertools.product(range(5), repeat=2):
        diff = features[i] - features[j]
        assert dist[i, j].item() == pytest.approx(torch.sqrt(diff @ a @ diff).item(), rel=1e-9, abs=1e-9)
