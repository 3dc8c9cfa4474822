"""EL-nivMF (probabilistic proxies): every similarity trains, the Proxy-Anchor term, the hooks."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pytorch_metric_learning.losses import ProxyAnchorLoss
from torch import nn

from benchmark.errors import ConfigError
from benchmark.methods import MethodContext, get_method
from benchmark.methods.library.prob_proxies import SIMILARITIES, proxy_anchor_loss
from benchmark.methods.vmf import log_nivmf_density
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN

NUM_CLASSES, PER_CLASS, FEATURES, EMBEDDING = 6, 4, 20, 16
CTX = MethodContext(num_classes=NUM_CLASSES, embedding_dim=EMBEDDING)


def _batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    embedder = nn.Linear(FEATURES, EMBEDDING)
    with torch.no_grad():
        embedder.weight.mul_(30.0)  # what configure_model does: κ starts large
    features = torch.randn(NUM_CLASSES * PER_CLASS, FEATURES, generator=gen)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(PER_CLASS)
    return embedder, features, labels


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_every_similarity_trains(similarity):
    embedder, features, labels = _batch()
    method = get_method("nivmf").create(CTX, {"similarity": similarity, "rho": 0.5})
    loss = method(embedder(features), labels)
    assert loss.ndim == 0 and loss.dtype == torch.float32 and math.isfinite(loss.item())
    loss.backward()
    assert embedder.weight.grad is not None and embedder.weight.grad.abs().sum() > 0
    assert method.proxy_directions.grad.abs().sum() > 0
    assert method.temperature_raw.grad is not None and method.temperature_raw.grad.abs() > 0
    if similarity == "cosine":
        assert method.concentration_raw.grad is None  # the isotropic point baseline has no concentrations
    else:
        assert method.concentration_raw.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in method.parameters() if p.grad is not None)


@pytest.mark.parametrize("similarity", ["el_nivmf", "kl"])
def test_similarity_only_loss_trains_concentrations_and_embedding_norm(similarity):
    embedder, features, labels = _batch(1)
    method = get_method("nivmf").create(CTX, {"similarity": similarity, "pa_weight": 0.0})  # standalone
    e = embedder(features).detach().requires_grad_(True)
    method(e, labels).backward()
    radial = (e.grad * torch.nn.functional.normalize(e.detach(), dim=1)).sum(1)
    assert radial.abs().sum() > 0  # κ = ‖e‖ is trained by the probabilistic similarity
    assert method.concentration_raw.grad.abs().sum() > 0


def test_parametrisation_and_defaults():
    spec = get_method("nivmf")
    assert spec.display_name == "EL-nivMF" and spec.needs_num_classes and spec.has_parameters
    method = spec.create(CTX, {"proxy_concentration": 9.0, "temperature": 0.01})
    assert torch.allclose(method.concentrations, torch.full((NUM_CLASSES, EMBEDDING), 9.0))
    assert torch.allclose(method.proxy_directions.norm(dim=1), torch.full((NUM_CLASSES,), 9.0))
    assert abs(method.temperature.item() - 0.01) < 1e-7
    with torch.no_grad():
        method.concentration_raw[0, 0] = -5.0
    assert method.concentrations[0, 0].item() == pytest.approx(0.1)
    groups = method.optimizer_groups(default_lr=1e-6, weight_decay=1e-4)
    assert len(groups) == 1 and groups[0]["lr"] == spec.defaults["loss_lr"]
    frozen = spec.create(CTX, {"learn_temperature": False})
    assert all(p is not frozen.temperature_raw for p in frozen.parameters())
    with pytest.raises(ConfigError):
        spec.create(CTX, {"similarity": "euclidean"})


def test_el_nivmf_with_very_concentrated_images_is_the_proxy_log_density():
    # κ → ∞: every sample z equals μ (up to O(√(D/κ))), so s_ic = l(μ_i, c) / τ
    gen = torch.Generator().manual_seed(0)
    method = get_method("nivmf").create(CTX, {"n_samples": 3})
    mu = torch.nn.functional.normalize(torch.randn(5, EMBEDDING, generator=gen, dtype=torch.float64), dim=1)
    with torch.no_grad():
        method.concentration_raw.uniform_(0.5, 3.0)
        sim = method.similarities(mu * 1e12)
        expected = log_nivmf_density(mu, method.directions.double(), method.concentrations.double())
        tau = method.temperature.double()
    assert torch.allclose(sim * tau, expected, atol=1e-3)


def test_proxy_anchor_term_matches_pml():
    torch.manual_seed(0)
    emb = torch.randn(24, EMBEDDING, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2] * 8)  # proxies 3..5 have no positives
    pml = ProxyAnchorLoss(num_classes=NUM_CLASSES, embedding_size=EMBEDDING, margin=0.1, alpha=32).double()
    proxies = pml.proxies.detach().clone()
    ours = proxy_anchor_loss(torch.nn.functional.normalize(emb, dim=1), proxies, labels, alpha=32, margin=0.1)
    assert torch.allclose(ours, pml(emb, labels), atol=1e-9)


def test_configure_model_scales_the_embedder_once():
    torch.manual_seed(0)
    model = EmbeddingModel(SmallCNN(width=8), embedding_dim=EMBEDDING)
    w0, b0 = model.embedder.weight.detach().clone(), model.embedder.bias.detach().clone()
    method = get_method("nivmf").create(CTX, {"init_scale": 12.0})
    assert method.configure_model(model) is model
    assert torch.allclose(model.embedder.weight, 12.0 * w0) and torch.equal(model.embedder.bias, b0)
    method.configure_model(model)
    assert torch.allclose(model.embedder.weight, 12.0 * w0)


def test_warm_start_sets_directions_to_class_means():
    method = get_method("nivmf").create(CTX, {"proxy_concentration": 6.0})
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(20, EMBEDDING)).astype(np.float32)
    labels = np.repeat(np.arange(5), 4)  # class 5 absent: keeps its direction
    before = method.proxy_directions.detach().clone()
    state = SimpleNamespace(embed_training_set=lambda: emb, train_set=SimpleNamespace(labels=labels))
    method.on_epoch_start(2, state)
    assert torch.equal(method.proxy_directions.detach(), before)
    method.on_epoch_start(1, state)
    for c in range(5):
        mean = torch.as_tensor(emb[labels == c].mean(0))
        assert torch.allclose(method.proxy_directions[c].detach(), 6.0 * mean / mean.norm(), atol=1e-5)
    assert torch.equal(method.proxy_directions[5].detach(), before[5])


def _proxy_anchor_by_hand(mu, proxies, labels, alpha=32.0, delta=0.1, weight_by_count=False):
    """Proxy-Anchor with loops. The paper: (1/|P+|) Σ_{p in P+} log(1 + Σ_{x in X_p+} e^{-α(s(x,p) - δ)}) +
    (1/|P|) Σ_p log(1 + Σ_{x in X_p-} e^{α(s(x,p) + δ)}). ``weight_by_count``: the EL-nivMF authors' positive
    term, whose mean runs over the batch's samples, so each present proxy counts as often as its class's samples."""
    s = torch.nn.functional.normalize(mu, dim=1) @ torch.nn.functional.normalize(proxies, dim=1).T
    labels = labels.tolist()
    present = sorted(set(labels))
    pos = {p: math.log(1 + sum(math.exp(-alpha * (s[i, p].item() - delta)) for i, y in enumerate(labels) if y == p))
           for p in present}
    neg = [math.log(1 + sum(math.exp(alpha * (s[i, p].item() + delta)) for i, y in enumerate(labels) if y != p))
           for p in range(proxies.shape[0])]
    pos_term = (sum(pos[y] for y in labels) / len(labels)) if weight_by_count else sum(pos.values()) / len(present)
    return pos_term + sum(neg) / len(neg)


@pytest.mark.parametrize("labels", [
    [0, 0, 0, 0, 0, 1, 2, 2],        # unbalanced, with a class of one sample
    [3, 1, 4, 0, 5, 2],              # one sample per class
    [0, 0, 1, 1, 2, 2, 3, 3],        # balanced: the authors' weighting agrees
])
def test_nivmf_proxy_anchor_term_is_the_papers_per_proxy_mean_in_any_batch(labels):
    gen = torch.Generator().manual_seed(1)
    mu = torch.randn(len(labels), EMBEDDING, generator=gen, dtype=torch.float64)
    proxies = torch.randn(NUM_CLASSES, EMBEDDING, generator=gen, dtype=torch.float64)
    y = torch.tensor(labels)
    ours = proxy_anchor_loss(torch.nn.functional.normalize(mu, dim=1), proxies, y, alpha=32, margin=0.1).item()
    assert ours == pytest.approx(_proxy_anchor_by_hand(mu, proxies, y), abs=1e-9)
    authors = _proxy_anchor_by_hand(mu, proxies, y, weight_by_count=True)
    counts = set(np.bincount(labels).tolist()) - {0}
    assert (abs(ours - authors) < 1e-9) == (len(counts) == 1)  # they differ exactly when the batch is unbalanced
