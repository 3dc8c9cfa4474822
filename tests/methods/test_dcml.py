"""DCML: the IRM penalty against finite differences, the cheap inference objective against autograd,
environment inference, the averaged attention at test time, and one full training step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.config import TrainingConfig
from benchmark.data.base import ArrayImageSet
from benchmark.methods import MethodContext, get_method
from benchmark.methods.library.dcml import (
    DCMLModel,
    attend,
    class_centre_penalty,
    cosface_logits,
    environment_objective,
    irm_penalty,
    irm_sample_gradients,
)
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN
from benchmark.training.trainer import TrainState

NUM_CLASSES, EMBEDDING = 8, 16
CTX = MethodContext(num_classes=NUM_CLASSES, embedding_dim=EMBEDDING)


def _tiny_logits(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(5, 4, generator=gen, dtype=torch.float64)).requires_grad_(True)
    labels = torch.tensor([0, 1, 2, 3, 1])
    weights = torch.rand(5, generator=gen, dtype=torch.float64) + 0.1
    return logits, labels, weights


def _weighted_loss(logits, labels, weights, c):
    return (F.cross_entropy(logits * c, labels, reduction="none") * weights).sum() / weights.sum()


def _build(seed: int = 0, overrides=None, width: int = 8):
    torch.manual_seed(seed)
    method = get_method("dcml").create(CTX, overrides or {})
    model = method.configure_model(EmbeddingModel(SmallCNN(width=width), embedding_dim=EMBEDDING))
    return method, model


# 1. IRM penalty --------------------------------------------------------------------------------
def test_irm_penalty_is_the_squared_dummy_gradient_by_central_differences():
    logits, labels, weights = _tiny_logits()
    eps = 1e-6
    grad = []
    for k in range(logits.shape[1]):
        c_plus, c_minus = torch.ones(1, 4, dtype=torch.float64), torch.ones(1, 4, dtype=torch.float64)
        c_plus[0, k] += eps
        c_minus[0, k] -= eps
        with torch.no_grad():
            grad.append((_weighted_loss(logits, labels, weights, c_plus)
                         - _weighted_loss(logits, labels, weights, c_minus)) / (2 * eps))
    expected = float(sum(g ** 2 for g in grad))
    assert irm_penalty(logits, labels, weights).item() == pytest.approx(expected, rel=1e-7)
    # the closed-form per-sample gradients give the same penalty
    g = irm_sample_gradients(logits.detach(), labels)
    closed = ((weights @ g) / weights.sum()).pow(2).sum().item()
    assert closed == pytest.approx(expected, rel=1e-7)
    with torch.no_grad():  # also a plain value under no_grad
        assert irm_penalty(logits, labels, weights).item() == pytest.approx(expected, rel=1e-7)


def test_irm_penalty_double_backward_matches_finite_differences():
    logits, labels, weights = _tiny_logits(1)
    penalty = irm_penalty(logits, labels, weights)
    (analytic,) = torch.autograd.grad(penalty, [logits])
    eps = 1e-6
    numeric = torch.zeros_like(logits)
    base = logits.detach()
    for idx in np.ndindex(*base.shape):
        plus, minus = base.clone(), base.clone()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (irm_penalty(plus, labels, weights) - irm_penalty(minus, labels, weights)) / (2 * eps)
    assert torch.allclose(analytic, numeric, rtol=1e-5, atol=1e-8)

    # through the CosFace logits into the embeddings and the proxies (torch's own numerical check)
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    proxies = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, p: irm_penalty(cosface_logits(a, p, labels, 5.0, 0.3), labels, weights), (z, proxies))


def test_class_centre_penalty_by_hand():
    z = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 1])
    w = torch.tensor([1.0, 3.0, 2.0])
    # class 0 mean (2, 0): squared distances 1 and 1; class 1 alone: 0
    assert class_centre_penalty(z, labels, w).item() == pytest.approx((1 * 1 + 3 * 1 + 2 * 0) / 6)


# 2. environment inference ---------------------------------------------------------------------
def test_gram_objective_equals_the_autograd_dummy_penalties():
    """w_jᵀ K_j w_j / (1ᵀ w_j)² = the logit IRM penalty + the channel and spatial dummy penalties (authors' form)."""
    method, model = _build()
    model.eval()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, 32, 32, generator=gen)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    w = torch.rand(6, 2, generator=gen) + 0.05
    grams = method.penalty_grams(model, x, y).double()
    with torch.no_grad():
        fmap = model.trunk.feature_map(x)
    expected = []
    for j in range(2):
        a = model.attend(fmap, j).detach()
        ones_c = torch.ones(1, a.shape[1], 1, 1, requires_grad=True)
        ones_s = torch.ones(1, 1, a.shape[2], a.shape[3], requires_grad=True)
        logits = cosface_logits(model.head(a * ones_s * ones_c), method.proxies, y, method.scale, method.margin)
        loss = _weighted_loss(logits, y, w[:, j], torch.ones(1))
        gs, gc = torch.autograd.grad(loss, [ones_s, ones_c])
        expected.append(irm_penalty(logits.detach(), y, w[:, j]) + gs.pow(2).sum() + gc.pow(2).sum())
    got = environment_objective(grams, w.double()).item()
    assert got == pytest.approx(torch.stack(expected).mean().item(), rel=1e-4)


def _fake_state(model, n_classes=4, per_class=6, seed=0, batch_size=8, iterations_per_epoch=3):
    """24 images by default; 3 iterations of 8 per trainer epoch: one pass over the data per epoch."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_classes * per_class, 32, 32, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(n_classes), per_class)
    data = ArrayImageSet(images, labels)
    return TrainState(model=model, train_set=data, train_eval_set=data, device=torch.device("cpu"), seed=seed,
                      cfg=TrainingConfig(batch_size=batch_size, iterations_per_epoch=iterations_per_epoch))


def _inference_epochs(method, state, epochs):
    """The trainer epochs (1..epochs) at whose start ``on_epoch_start`` inferred the environments."""
    seen, last = [], None
    for epoch in range(1, epochs + 1):
        state.epoch, state.iteration = epoch, (epoch - 1) * state.cfg.iterations_per_epoch
        method.on_epoch_start(epoch, state)
        if method.env_logits is not last:
            seen.append(epoch)
            last = method.env_logits
    return seen


def test_environment_inference_increases_its_objective_and_runs_on_schedule():
    method, model = _build()
    state = _fake_state(model)
    model.train()
    method.on_epoch_start(1, state)
    log = method.last_inference
    assert log["batches"] == 3
    assert log["objective_after"] > log["objective_before"]
    table = method.env_logits
    assert table.shape == (24, 2) and torch.isfinite(table).all()
    assert model.training and not model.trunk.body[0][1].training  # train mode back, trunk BN still frozen
    w = method.environment_weights(torch.arange(24), 24, device=torch.device("cpu"), dtype=torch.float32)
    assert torch.allclose(w.sum(1), torch.ones(24)) and not torch.allclose(w, torch.full_like(w, 0.5))

    state.iteration = 3  # epoch 2, after one pass: not an inference epoch (interval 5 passes), the table is kept
    method.on_epoch_start(2, state)
    assert method.env_logits is table
    state.iteration = 15  # epoch 6 starts after 5 passes
    method.on_epoch_start(6, state)
    assert method.env_logits is not table

    # more passes keep climbing (the objective is cheap to evaluate on the stored Gram matrices)
    longer, model2 = _build(overrides={"env_passes": 5})
    longer.on_epoch_start(1, _fake_state(model2))
    assert longer.last_inference["objective_after"] > log["objective_before"]


@pytest.mark.parametrize("interval, iterations_per_epoch, expected", [
    (5, 3, [1, 6, 11]),           # one pass per trainer epoch: every 5 epochs, as the authors' CUB / Cars runs
    (10, 3, [1, 11]),             # their SOP interval
    (5, 6, [1, 4, 6, 9, 11]),     # two passes per epoch: the first epoch after 5, 10, 15, 20 passes
    (5, 1, [1, 16]),              # a third of a pass per epoch: 5 passes are 15 epochs
])
def test_inference_every_env_interval_passes_over_the_training_data(interval, iterations_per_epoch, expected):
    method, model = _build(overrides={"env_interval": interval})
    model.train()
    state = _fake_state(model, iterations_per_epoch=iterations_per_epoch)
    assert _inference_epochs(method, state, 16 if iterations_per_epoch == 1 else 11) == expected


def test_inference_covers_every_training_image_once():
    """120 images in batches of 2: 60 batches, past the 50 that once capped it; every Ω row is learned."""
    method, model = _build()
    model.train()
    state = _fake_state(model, n_classes=4, per_class=30, batch_size=2)
    method.on_epoch_start(1, state)
    assert method.last_inference["batches"] == 60 and method.last_inference["images"] == 120
    initial = torch.randn(120, 2, generator=torch.Generator().manual_seed(state.seed + 1))  # Ω's draw
    moved = (method.env_logits - initial).abs().amax(dim=1)
    assert bool((moved > 1e-3).all()), f"{int((moved <= 1e-3).sum())} images kept their random row"


def test_environment_weights_are_uniform_before_inference():
    method, _ = _build(overrides={"n_envs": 3})
    w = method.environment_weights(torch.arange(4), 4, device=torch.device("cpu"), dtype=torch.float32)
    assert torch.allclose(w, torch.full((4, 3), 1 / 3))


# 3. test-time attention -----------------------------------------------------------------------
def test_eval_forward_uses_the_averaged_attention():
    method, model = _build(overrides={"n_envs": 3})
    assert isinstance(model, DCMLModel) and model.grid == (4, 4)
    with torch.no_grad():
        for j, att in enumerate(model.attentions):
            for k, w in enumerate(att.weights()):
                w.copy_(torch.full_like(w, 0.1 * (j + 1) * (-1) ** k) + 0.05 * torch.randn_like(w))
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        fmap = model.trunk.feature_map(x)
        mean = [torch.stack([att.weights()[k] for att in model.attentions]).mean(0) for k in range(4)]
        s1, s2, c1, c2 = mean
        spatial = torch.sigmoid(torch.relu(fmap.mean(1).flatten(1) @ s1.t()) @ s2.t()).view(4, 1, 4, 4)
        f1 = fmap * spatial
        channel = torch.sigmoid(torch.relu(f1.mean((2, 3)) @ c1.t()) @ c2.t()).view(4, -1, 1, 1)
        expected = F.normalize(model.head(f1 * channel), dim=1)
        env0 = F.normalize(model.head(model.attend(fmap, 0)), dim=1)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(out.norm(dim=1), torch.ones(4))
    assert not torch.allclose(out, env0, atol=1e-3)


def test_attention_on_another_map_size_pools_to_the_grid():
    torch.manual_seed(0)
    att_weights = (torch.randn(16, 16), torch.randn(16, 16), torch.randn(4, 8), torch.randn(8, 4))
    fmap = torch.randn(2, 8, 4, 4)
    same = attend(fmap, att_weights, (4, 4))
    assert same.shape == fmap.shape
    bigger = attend(torch.randn(2, 8, 7, 7), att_weights, (4, 4))
    assert bigger.shape == (2, 8, 7, 7) and torch.isfinite(bigger).all()


# 4. a full training step ----------------------------------------------------------------------
def test_training_step_has_finite_loss_and_gradients_everywhere():
    method, model = _build()
    model.train()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(16, 3, 32, 32, generator=gen)
    y = torch.arange(NUM_CLASSES).repeat_interleave(2)
    method.env_logits = torch.randn(40, 2, generator=gen)  # as after an inference
    loss = method.training_step(model, x, y, torch.arange(16) + 10)
    assert loss.ndim == 0 and math.isfinite(loss.item())
    loss.backward()

    def has_grad(params):
        return all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)

    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.trunk.parameters())
    for att in model.attentions:
        assert has_grad(att.parameters())
    assert has_grad(model.erm_attention.parameters())
    assert has_grad(model.head.parameters())
    assert has_grad([method.proxies, method.erm_proxies])
    # the optimizer groups: only the two proxy sets, at loss_lr
    groups = method.optimizer_groups(default_lr=1e-6, weight_decay=1e-4)
    assert len(groups) == 1 and {id(p) for p in groups[0]["params"]} == {id(method.proxies), id(method.erm_proxies)}


def test_training_step_terms_add_up():
    """Raising β alone adds exactly Δβ · R_θ (the attention divergence) to the step's loss."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(8, 3, 32, 32, generator=gen)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    values = {}
    for name, hp in {"none": {"alpha": 1e-6, "beta": 1e-3, "gamma": 1e-6},
                     "beta": {"alpha": 1e-6, "beta": 1e-1, "gamma": 1e-6}}.items():
        method, model = _build(overrides=hp)
        model.eval()  # deterministic head BatchNorm
        with torch.no_grad():
            values[name] = method.training_step(model, x, y, torch.arange(8)).item()
            divergence = method.attention_divergence(model).item()
    assert divergence > 0
    assert values["beta"] - values["none"] == pytest.approx((1e-1 - 1e-3) * divergence, rel=1e-3, abs=1e-5)
