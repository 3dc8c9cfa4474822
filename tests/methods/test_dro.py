"""DRO-TopK, -TopK-PN and -KL against their formulas written out by hand, and the LS / MS identities.

The expected values are plain Python loops over the unordered pairs i < j of a 5-sample batch.
"""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.distances import CosineSimilarity

from benchmark.methods import MethodContext, get_method
from benchmark.methods.library.dro import (
    kl_dro,
    lifted_structure_as_kl,
    multi_similarity_as_kl,
    pair_losses,
    topk_count,
    topk_dro,
)

EMB = [[1.0, 0.2, 0.1], [0.8, 0.5, -0.2], [-0.3, 1.0, 0.4], [0.1, 0.7, 0.9], [0.5, -0.6, 0.8]]
LABELS = [0, 0, 1, 1, 2]  # 2 positive and 8 negative unordered pairs
CTX = MethodContext(num_classes=3, embedding_dim=3)
ALPHA, LAM = 0.2, 0.5
N = len(EMB)
N_PAIRS = N * (N - 1) // 2


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


X = [unit(v) for v in EMB]


def sim(i, j):
    return sum(p * q for p, q in zip(X[i], X[j]))


def pair_loss(i, j, alpha=ALPHA, lam=LAM):
    y = 1 if LABELS[i] == LABELS[j] else -1
    return max(alpha + y * (lam - sim(i, j)), 0.0)


def unordered_pairs():
    return [(i, j) for i in range(N) for j in range(i + 1, N)]


def method_loss(name, overrides, emb=EMB, labels=LABELS):
    method = get_method(name).create(CTX, overrides)
    return method(torch.tensor(emb, dtype=torch.float64), torch.tensor(labels)).item()


@pytest.mark.parametrize("k_fraction", [0.1, 0.3, 0.55, 1.0])
def test_topk_is_the_mean_of_the_k_largest_pair_losses(k_fraction):
    k = max(1, math.floor(k_fraction * N_PAIRS + 0.5))  # 1, 3, 6 (5.5 rounds up), 10 pairs
    expected = sum(sorted((pair_loss(i, j) for i, j in unordered_pairs()), reverse=True)[:k]) / k
    assert method_loss("dro_topk", {"k_fraction": k_fraction}) == pytest.approx(expected, abs=1e-9)
    # a plausible mistake, the mean over all pairs, gives another value
    if k < N_PAIRS:
        assert abs(expected - sum(pair_loss(i, j) for i, j in unordered_pairs()) / N_PAIRS) > 1e-3


def test_topk_pn_with_fewer_positives_than_k_over_2():
    # k_fraction 0.8 of 10 pairs: K = 8, K/2 = 4 of each kind; the batch has only 2 positive pairs
    pos = sorted((pair_loss(i, j) for i, j in unordered_pairs() if LABELS[i] == LABELS[j]), reverse=True)
    neg = sorted((pair_loss(i, j) for i, j in unordered_pairs() if LABELS[i] != LABELS[j]), reverse=True)
    assert len(pos) == 2 and len(neg) == 8
    expected = (sum(pos) + sum(neg[:4])) / 8
    assert method_loss("dro_topk_pn", {"k_fraction": 0.8}) == pytest.approx(expected, abs=1e-9)
    # K/2 = 1: the hardest positive and the hardest negative pair
    assert method_loss("dro_topk_pn", {"k_fraction": 0.2}) == pytest.approx((pos[0] + neg[0]) / 2, abs=1e-9)


@pytest.mark.parametrize("gamma", [0.05, 0.1, 1.0])
def test_kl_is_the_smooth_maximum_of_the_pair_losses(gamma):
    values = [pair_loss(i, j, 0.3, 0.4) for i, j in unordered_pairs()]
    expected = gamma * math.log(sum(math.exp(v / gamma) for v in values) / len(values))
    assert method_loss("dro_kl", {"gamma": gamma, "alpha": 0.3, "lam": 0.4}) == pytest.approx(expected, abs=1e-9)
    # over the ordered pairs (each unordered pair twice) the value is the same
    ordered = [pair_loss(i, j, 0.3, 0.4) for i in range(N) for j in range(N) if i != j]
    assert gamma * math.log(sum(math.exp(v / gamma) for v in ordered) / len(ordered)) == pytest.approx(expected)
    assert max(values) >= expected >= sum(values) / len(values)


def test_k_counts_unordered_pairs_and_matches_the_authors_ordered_count():
    """Our TopK with K = 2·K_auth unordered pairs is the authors' mean of the 4·K_auth largest ordered entries."""
    torch.manual_seed(0)
    emb, labels = torch.randn(12, 6, dtype=torch.float64), torch.arange(4).repeat_interleave(3)
    losses, positive = pair_losses(emb, labels, ALPHA, LAM)
    assert losses.numel() == 66 and int(positive.sum()) == 4 * 3
    x = torch.nn.functional.normalize(emb, dim=1)
    s = x @ x.t()
    same = labels[:, None] == labels[None, :]
    off_diag = ~torch.eye(12, dtype=torch.bool)
    full = torch.where(same, ALPHA + LAM - s, ALPHA - LAM + s).clamp_min(0)[off_diag]
    for k_auth in (2, 5, 10):
        authors = torch.topk(full, 4 * k_auth).values.mean()
        assert topk_dro(losses, 2 * k_auth).item() == pytest.approx(authors.item(), abs=1e-12)
    assert topk_count(0.06, 3160) == 190  # k_fraction 0.06 at the authors' batch 80: K_auth = 95


@pytest.mark.parametrize("name", ["dro_topk", "dro_topk_pn", "dro_kl"])
def test_gradient_flows_to_the_embeddings(name):
    emb = torch.tensor(EMB, dtype=torch.float64, requires_grad=True)
    loss = get_method(name).create(CTX)(emb, torch.tensor(LABELS))
    loss.backward()
    assert loss.item() > 0 and emb.grad is not None and emb.grad.abs().sum() > 0
    assert torch.isfinite(emb.grad).all()


def test_kl_dro_helper_masks_and_extra_zero():
    values = torch.tensor([[0.3, 1.0, -0.5], [2.0, 0.1, 0.4]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    out = kl_dro(values, 0.5, mask=mask, dim=1)
    assert out[0].item() == pytest.approx(0.5 * math.log((math.exp(0.6) + math.exp(-1.0)) / 2))
    assert out[1].item() == 0.0  # an empty set
    zero = kl_dro(values, 0.5, mask=mask, dim=1, extra_zero=True)
    assert zero[0].item() == pytest.approx(0.5 * math.log((1 + math.exp(0.6) + math.exp(-1.0)) / 3))
    (out.sum() + zero.sum()).backward()
    assert torch.isfinite(values.grad).all() and values.grad[0, 1] == 0 and values.grad[1].abs().sum() == 0


def _positives(i):
    return [k for k in range(N) if k != i and LABELS[k] == LABELS[i]]


def _negatives(i):
    return [k for k in range(N) if LABELS[k] != LABELS[i]]


def test_lifted_structure_is_the_kl_form_on_positives_and_negatives():
    """KL form (γ = 1) on ℓ = −S over P_i and ℓ = S over N_i = the DRO paper's per-anchor lifted structure.

    Compared with the formula written out (λ = 0.5, which cancels) and with PML's
    ``GeneralizedLiftedStructureLoss`` (pos_margin = neg_margin = λ, cosine similarity) where every
    anchor has positives: PML's class implements this per-anchor form and reduces by the mean over
    anchors. An anchor without positives has log Σ_∅ = −∞ and contributes 0 (PML gives it
    [log Σ_N e^{S−λ}]₊ instead; our ``lifted_structure`` method follows the formula).
    """
    labels = [0, 0, 1, 1, 1]  # every anchor has a positive
    emb = torch.tensor(EMB, dtype=torch.float64)
    per_anchor = lifted_structure_as_kl(emb, torch.tensor(labels), LAM)
    # λ cancels when every anchor has positives and negatives: the KL form on ℓ = −S and ℓ = S
    assert lifted_structure_as_kl(emb, torch.tensor(labels), 0.0).tolist() == pytest.approx(per_anchor.tolist())

    def s(i, k):
        return sum(p * q for p, q in zip(X[i], X[k]))

    expected = []
    for i in range(N):
        pos = [k for k in range(N) if k != i and labels[k] == labels[i]]
        neg = [k for k in range(N) if labels[k] != labels[i]]
        value = (math.log(sum(math.exp(LAM - s(i, k)) for k in pos))
                 + math.log(sum(math.exp(s(i, k) - LAM) for k in neg)))
        expected.append(max(value, 0.0))
    assert per_anchor.tolist() == pytest.approx(expected, abs=1e-9)
    assert max(expected) > 0
    pml = pml_losses.GeneralizedLiftedStructureLoss(pos_margin=LAM, neg_margin=LAM, distance=CosineSimilarity())
    assert pml(emb, torch.tensor(labels)).item() == pytest.approx(per_anchor.mean().item(), abs=1e-9)
    # the hand-built batch's singleton class: anchor 4 has no positive and contributes 0
    single = lifted_structure_as_kl(emb, torch.tensor(LABELS), LAM)
    by_hand = [0.0 if not _positives(i) else max(0.0, math.log(sum(math.exp(LAM - s(i, k)) for k in _positives(i)))
                                                  + math.log(sum(math.exp(s(i, k) - LAM) for k in _negatives(i))))
               for i in range(N)]
    assert not _positives(4) and by_hand[4] == 0.0 and min(by_hand[:4]) > 0
    assert single.tolist() == pytest.approx(by_hand, abs=1e-9)
    method = get_method("lifted_structure").create(CTX, {"pos_margin": LAM, "neg_margin": LAM})
    assert method(emb, torch.tensor(LABELS)).item() == pytest.approx(single.mean().item(), abs=1e-9)
    # PML would charge anchor 4 its negatives' log-sum instead
    assert pml(emb, torch.tensor(LABELS)).item() > single.mean().item() + 1e-3


@pytest.mark.parametrize("alpha,beta,base", [(2.0, 50.0, 0.5), (1.0, 5.0, 0.3)])
def test_multi_similarity_is_the_per_anchor_kl_form_with_one_zero_loss_element(alpha, beta, base):
    emb = torch.tensor(EMB, dtype=torch.float64)
    per_anchor = multi_similarity_as_kl(emb, torch.tensor(LABELS), alpha, beta, base)
    expected = []
    for i in range(N):
        p = math.log(1 + sum(math.exp(-alpha * (sim(i, k) - base)) for k in _positives(i))) / alpha
        n = math.log(1 + sum(math.exp(beta * (sim(i, k) - base)) for k in _negatives(i))) / beta
        expected.append(p + n)
    assert per_anchor.tolist() == pytest.approx(expected, abs=1e-9)
    pml = pml_losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)  # no miner
    assert pml(emb, torch.tensor(LABELS)).item() == pytest.approx(per_anchor.mean().item(), abs=1e-9)
    # without the zero element (a plain KL form) the value differs
    sim_mat = torch.tensor([[sim(i, k) for k in range(N)] for i in range(N)], dtype=torch.float64)
    pos_mask = torch.tensor([[k in _positives(i) for k in range(N)] for i in range(N)])
    no_zero = kl_dro(base - sim_mat, 1 / alpha, mask=pos_mask, dim=1)
    with_zero = kl_dro(base - sim_mat, 1 / alpha, mask=pos_mask, dim=1, extra_zero=True)
    assert (no_zero - with_zero).abs().max() > 1e-3
