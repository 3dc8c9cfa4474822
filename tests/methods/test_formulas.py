"""Each loss against its formula written out by hand on a 6-sample batch.

The expected values are plain Python loops over pairs / triplets / anchors, following the paper's
formula and the reduction PML documents for the class (read from its source): AvgNonZeroReducer
(mean of the non-zero terms) for contrastive and triplet, DivisorReducer (sum / number of non-zero
terms) for margin, MeanReducer (mean over anchors, positive pairs or samples) for the others.
Every test also checks that a plausible mistake (another reduction, another margin) would change
the value, so that the comparison can fail.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from benchmark.methods import MethodContext, get_method

EMB = [[1.0, 0.2, 0.1], [0.8, 0.5, -0.2], [-0.3, 1.0, 0.4],
       [0.1, 0.7, 0.9], [0.5, -0.6, 0.8], [-0.9, -0.2, 0.3]]
LABELS = [0, 0, 1, 1, 2, 2]
CTX = MethodContext(num_classes=3, embedding_dim=3)
TOL = 1e-5


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


X = [unit(v) for v in EMB]
N = len(X)


def sim(i, j, a=X, b=X):
    return sum(p * q for p, q in zip(a[i], b[j]))


def dist(i, j):
    return math.sqrt(sum((p - q) ** 2 for p, q in zip(X[i], X[j])))


def positives(i):
    return [j for j in range(N) if j != i and LABELS[j] == LABELS[i]]


def negatives(i):
    return [j for j in range(N) if LABELS[j] != LABELS[i]]


def triplets():
    return [(a, p, n) for a in range(N) for p in positives(a) for n in negatives(a)]


def mean(xs):
    return sum(xs) / len(xs)


def mean_nonzero(xs):
    nz = [x for x in xs if x > 0]
    return sum(nz) / len(nz) if nz else 0.0


def relu(x):
    return max(x, 0.0)


def pml_loss(name, overrides, ctx=CTX, setup=None):
    torch.manual_seed(0)
    method = get_method(name).create(ctx, overrides)
    if setup is not None:
        setup(method)
    emb = torch.tensor(EMB, dtype=torch.float64)
    return method(emb, torch.tensor(LABELS)).item()


def differs(a, b):
    return abs(a - b) > 1e-3


def test_contrastive():
    pm, nm = 0.2, 1.1
    pos = [relu(dist(i, j) - pm) for i in range(N) for j in positives(i)]
    neg = [relu(nm - dist(i, j)) for i in range(N) for j in negatives(i)]
    assert 0 in neg and any(neg)  # some negative pairs are beyond the margin: the reduction matters
    expected = mean_nonzero(pos) + mean_nonzero(neg)
    got = pml_loss("contrastive", {"pos_margin": pm, "neg_margin": nm})
    assert got == pytest.approx(expected, abs=TOL)
    assert differs(expected, mean(pos) + mean(neg))
    assert differs(got, pml_loss("contrastive", {"pos_margin": pm, "neg_margin": nm + 0.05}))


def test_triplet():
    m = 0.3
    terms = [relu(dist(a, p) - dist(a, n) + m) for a, p, n in triplets()]
    assert 0 in terms and any(terms)
    expected = mean_nonzero(terms)
    got = pml_loss("triplet", {"margin": m})
    assert got == pytest.approx(expected, abs=TOL)
    assert differs(expected, mean(terms))
    assert differs(got, pml_loss("triplet", {"margin": m + 0.05}))


def _margin_expected(alpha, beta_of_anchor):
    total, active = 0.0, 0
    for a, p, n in triplets():
        beta = beta_of_anchor(a)
        pos = relu(dist(a, p) - beta + alpha)
        neg = relu(beta - dist(a, n) + alpha)
        total += pos + neg
        active += (pos > 0) + (neg > 0)
    return total / active, total / (2 * len(triplets()))


def test_margin():
    alpha, beta = 0.1, 1.0
    expected, mean_all = _margin_expected(alpha, lambda a: beta)
    got = pml_loss("margin", {"margin": alpha, "beta": beta})
    assert got == pytest.approx(expected, abs=TOL)
    assert differs(expected, mean_all)
    assert differs(got, pml_loss("margin", {"margin": alpha, "beta": beta + 0.1}))


def test_margin_per_class_indexes_beta_by_the_anchor_class():
    alpha, betas = 0.1, [0.8, 1.0, 1.3]

    def set_betas(method):
        with torch.no_grad():
            method.loss.beta.copy_(torch.tensor(betas))

    expected, _ = _margin_expected(alpha, lambda a: betas[LABELS[a]])
    got = pml_loss("margin_per_class", {"margin": alpha}, setup=set_betas)
    assert got == pytest.approx(expected, abs=TOL)
    wrong, _ = _margin_expected(alpha, lambda a: betas[LABELS[a] - 1])
    assert differs(expected, wrong)


def test_lifted_structure_is_the_dro_paper_form():
    for pm, nm in [(0.5, 0.5), (0.5, 0.1), (-0.5, 0.5)]:
        terms = [relu(math.log(sum(math.exp(pm - sim(i, k)) for k in positives(i)))
                      + math.log(sum(math.exp(sim(i, k) - nm) for k in negatives(i))))
                 for i in range(N)]
        expected = mean(terms)
        got = pml_loss("lifted_structure", {"pos_margin": pm, "neg_margin": nm})
        assert got == pytest.approx(expected, abs=TOL), (pm, nm)
        if pm == -0.5:  # the hinge is active: some anchors give zero
            assert 0 in terms and any(terms)
            assert differs(expected, mean_nonzero(terms))
    # lambda cancels when both margins are equal: the DRO formula with any lambda is the same loss
    assert pml_loss("lifted_structure", {"pos_margin": 0.2, "neg_margin": 0.2}) == pytest.approx(
        pml_loss("lifted_structure", {"pos_margin": 0.5, "neg_margin": 0.5}), abs=TOL)


def test_lifted_structure_anchor_without_positives_contributes_zero():
    """Labels 0, 0, 1, 1, 2, 3: anchors 4 and 5 have no positive, so log Σ_∅ = −∞ and their term is 0."""
    labels = [0, 0, 1, 1, 2, 3]
    pm, nm = 0.5, 0.2

    def pos(i):
        return [j for j in range(N) if j != i and labels[j] == labels[i]]

    def neg(i):
        return [j for j in range(N) if labels[j] != labels[i]]

    terms = []
    for i in range(N):
        if not pos(i):
            terms.append(0.0)
            continue
        terms.append(relu(math.log(sum(math.exp(pm - sim(i, k)) for k in pos(i)))
                          + math.log(sum(math.exp(sim(i, k) - nm) for k in neg(i)))))
    expected = mean(terms)  # mean over all six anchors, the two without positives included
    method = get_method("lifted_structure").create(CTX, {"pos_margin": pm, "neg_margin": nm})
    emb = torch.tensor(EMB, dtype=torch.float64, requires_grad=True)
    got = method(emb, torch.tensor(labels))
    assert got.item() == pytest.approx(expected, abs=TOL)
    got.backward()
    assert torch.isfinite(emb.grad).all()
    # what an empty log-sum taken as 0 (PML's convention) would give for anchors 4 and 5
    charged = [relu(math.log(sum(math.exp(sim(i, k) - nm) for k in neg(i)))) for i in (4, 5)]
    assert all(c > 0 for c in charged)
    assert differs(expected, mean(terms[:4] + charged))
    assert differs(expected, mean(terms[:4]))  # nor the mean over the anchors with positives only


def test_multi_similarity():
    a_, b_, lam = 2.0, 10.0, 0.5
    overrides = {"alpha": a_, "beta": b_, "base": lam}
    terms = [(1 / a_) * math.log(1 + sum(math.exp(-a_ * (sim(i, k) - lam)) for k in positives(i)))
             + (1 / b_) * math.log(1 + sum(math.exp(b_ * (sim(i, k) - lam)) for k in negatives(i)))
             for i in range(N)]
    expected = mean(terms)
    got = pml_loss("multi_similarity", overrides)
    assert got == pytest.approx(expected, abs=TOL)
    assert differs(expected, sum(terms))
    assert differs(got, pml_loss("multi_similarity", {**overrides, "base": lam + 0.1}))


def test_ms_miner_drops_easy_pairs():
    a_, b_, lam, eps = 2.0, 10.0, 0.5, 0.0
    terms = []
    for i in range(N):
        hardest_pos = min(sim(i, p) for p in positives(i))
        hardest_neg = max(sim(i, k) for k in negatives(i))
        pos = [k for k in positives(i) if sim(i, k) - eps < hardest_neg]
        neg = [k for k in negatives(i) if sim(i, k) + eps > hardest_pos]
        terms.append((1 / a_) * math.log(1 + sum(math.exp(-a_ * (sim(i, k) - lam)) for k in pos))
                     + (1 / b_) * math.log(1 + sum(math.exp(b_ * (sim(i, k) - lam)) for k in neg)))
    expected = mean(terms)
    got = pml_loss("ms_miner", {"alpha": a_, "beta": b_, "base": lam, "epsilon": eps})
    assert got == pytest.approx(expected, abs=TOL)
    assert differs(got, pml_loss("multi_similarity", {"alpha": a_, "beta": b_, "base": lam}))


def test_ntxent():
    tau = 0.5
    terms = []
    for a in range(N):
        for p in positives(a):
            num = math.exp(sim(a, p) / tau)
            den = num + sum(math.exp(sim(a, n) / tau) for n in negatives(a))
            terms.append(-math.log(num / den))
    expected = mean(terms)
    got = pml_loss("ntxent", {"temperature": tau})
    assert got == pytest.approx(expected, abs=TOL)
    assert differs(got, pml_loss("ntxent", {"temperature": tau * 2}))


W = [[0.6, -0.1, 0.3], [0.2, 0.9, -0.4], [-0.5, 0.3, 0.8]]  # one row per class


def test_normalized_softmax():
    temperature = 0.5
    w = [unit(row) for row in W]

    def set_weights(method):
        with torch.no_grad():
            method.loss.W.copy_(torch.tensor(W).t())  # PML stores embedding_size x num_classes

    terms = []
    for i in range(N):
        logits = [sim(i, c, X, w) / temperature for c in range(3)]
        terms.append(-logits[LABELS[i]] + math.log(sum(math.exp(z) for z in logits)))
    expected = mean(terms)
    got = pml_loss("normalized_softmax", {"temperature": temperature}, setup=set_weights)
    assert got == pytest.approx(expected, abs=TOL)
    assert differs(got, pml_loss("normalized_softmax", {"temperature": 1.0}, setup=set_weights))


def _proxy_nca_terms(scale, include_positive=True):
    p = [unit(row) for row in W]
    terms = []
    for i in range(N):
        d2 = [sum((a - b) ** 2 for a, b in zip(X[i], p[c])) for c in range(3)]
        den = sum(math.exp(-scale * d2[c]) for c in range(3) if include_positive or c != LABELS[i])
        terms.append(-math.log(math.exp(-scale * d2[LABELS[i]]) / den))
    return terms


@pytest.mark.parametrize("name", ["proxy_nca", "proxy_nca_pp"])
def test_proxy_nca_keeps_the_positive_proxy_in_the_denominator(name):
    scale = 9.0

    def set_proxies(method):
        with torch.no_grad():
            method.loss.proxies.copy_(torch.tensor(W) * 3.0)  # the scale of a proxy must not matter

    expected = mean(_proxy_nca_terms(scale))
    got = pml_loss(name, {"softmax_scale": scale}, setup=set_proxies)
    assert got == pytest.approx(expected, abs=TOL)
    assert differs(expected, mean(_proxy_nca_terms(scale, include_positive=False)))
    assert differs(got, pml_loss(name, {"softmax_scale": 3.0}, setup=set_proxies))


def test_proxy_nca_pp_keeps_samples_whose_probability_underflows():
    """At scale 1000 PML's ProxyNCALoss drops the samples whose positive probability is 0 (here all: NaN)."""
    emb = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([1, 0])
    proxies = torch.eye(3)

    def loss(name):
        method = get_method(name).create(CTX, {"softmax_scale": 1000.0})
        with torch.no_grad():
            method.loss.proxies.copy_(proxies)
        return method(emb, labels).item()

    expected = 1000.0 * 2.0  # -log softmax: the positive proxy is at d² = 2, the nearest one at 0
    assert loss("proxy_nca_pp") == pytest.approx(expected, rel=1e-5)
    assert not math.isclose(loss("proxy_nca"), expected, rel_tol=1e-3)  # the parent's value is wrong here


def test_softtriple_regularizer_matches_pml():
    from pytorch_metric_learning.regularizers import SparseCentersRegularizer

    from benchmark.methods.library.softtriple import BlockSparseCentersRegularizer

    torch.manual_seed(0)
    weights = torch.randn(3 * 4, 5)
    ours = BlockSparseCentersRegularizer(num_classes=3, centers_per_class=4)(weights)
    pml = SparseCentersRegularizer(num_classes=3, centers_per_class=4)(weights)
    assert ours.item() == pytest.approx(pml.item(), abs=1e-6)
    # by hand: sum over classes and centre pairs t < t' of sqrt(2 - 2 cos), over C K (K - 1)
    w = [unit(row) for row in weights.tolist()]
    total = sum(math.sqrt(max(2 - 2 * sum(a * b for a, b in zip(w[c * 4 + s], w[c * 4 + t])), 0.0))
                for c in range(3) for s, t in itertools.combinations(range(4), 2))
    assert ours.item() == pytest.approx(total / (3 * 4 * 3), abs=1e-5)


def _ms_miner_by_hand(emb, labels, a_, b_, lam, eps):
    """The MS paper's loss over the pairs its miner keeps, written out with loops: the mean over all anchors."""
    x = [unit(v) for v in emb]
    n = len(x)

    def s(i, j):
        return sum(p * q for p, q in zip(x[i], x[j]))

    terms = []
    for i in range(n):
        pos = [k for k in range(n) if k != i and labels[k] == labels[i]]
        neg = [k for k in range(n) if labels[k] != labels[i]]
        kept_pos = [k for k in pos if neg and s(i, k) - eps < max(s(i, j) for j in neg)]
        kept_neg = [k for k in neg if pos and s(i, k) + eps > min(s(i, j) for j in pos)]
        terms.append((1 / a_) * math.log(1 + sum(math.exp(-a_ * (s(i, k) - lam)) for k in kept_pos))
                     + (1 / b_) * math.log(1 + sum(math.exp(b_ * (s(i, k) - lam)) for k in kept_neg)))
    return mean(terms)


@pytest.mark.parametrize("emb, labels", [
    # one mined positive pair (anchor 1) and one mined negative pair (anchor 1 against 2): PML alone gives 0
    ([[0.9771237725013421, 0.21267142077097612], [0.14348191220374865, -0.989652939605777],
      [0.033733497516071305, -0.9994308636145539]], [0, 0, 1]),
    # unbalanced, with a class of one sample (no positive: its anchor mines nothing)
    ([[1.0, 0.2, 0.1], [0.8, 0.5, -0.2], [0.6, 0.1, 0.3], [-0.3, 1.0, 0.4], [0.1, 0.7, 0.9], [0.5, -0.6, 0.8]],
     [0, 0, 0, 1, 1, 2]),
    (EMB, LABELS),
])
def test_ms_miner_is_the_papers_formula_in_unbalanced_and_single_sample_batches(emb, labels):
    hp = {"alpha": 2.0, "beta": 50.0, "base": 0.5, "epsilon": 0.1}
    expected = _ms_miner_by_hand(emb, labels, hp["alpha"], hp["beta"], hp["base"], hp["epsilon"])
    method = get_method("ms_miner").create(CTX, hp)
    got = method(torch.tensor(emb, dtype=torch.float64), torch.tensor(labels)).item()
    assert expected > 0 and got == pytest.approx(expected, abs=1e-9)


def test_without_the_singleton_guard_pml_would_give_zero_for_one_positive_and_one_negative_pair():
    from pytorch_metric_learning import losses, miners

    emb = torch.tensor([[0.9771237725013421, 0.21267142077097612], [0.14348191220374865, -0.989652939605777],
                        [0.033733497516071305, -0.9994308636145539]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    pairs = miners.MultiSimilarityMiner(epsilon=0.1)(emb, labels)
    assert [len(x) for x in pairs] == [1, 1, 1, 1]
    assert losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5)(emb, labels, pairs).item() == 0.0


def _cosine_contrastive_by_hand(x, labels, ref, ref_labels, offset=0, pm=1.0, nm=0.5):
    """The XBM paper's contrastive loss on cosine similarity of ``x`` against ``ref`` (sample i of ``x`` is
    ``ref[offset + i]``: that pair is left out), PML's reduction: each term's mean over its non-zero pairs."""
    def s(a, b):
        return sum(p * q for p, q in zip(a, b))
    pos, neg = [], []
    for i, a in enumerate(x):
        for j, b in enumerate(ref):
            if j == offset + i:
                continue
            if labels[i] == ref_labels[j]:
                pos.append(relu(pm - s(a, b)))
            else:
                neg.append(relu(s(a, b) - nm))
    return mean_nonzero(pos) + mean_nonzero(neg)


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_xbm_is_the_memory_term_and_the_authors_in_batch_term_is_an_option(weight):
    """Unbalanced batches with a single-sample class: the memory term pairs the batch with the whole memory
    (the last batch and this one); ``in_batch_weight`` adds the batch against itself, as the authors' code does."""
    first = [unit(v) for v in [[1.0, 0.2, 0.1], [0.8, 0.5, -0.2], [0.6, 0.1, 0.3], [-0.3, 1.0, 0.4], [0.5, -0.6, 0.8]]]
    second = [unit(v) for v in [[0.2, 0.9, 0.1], [0.9, -0.1, 0.4], [-0.5, 0.3, 0.8], [0.4, 0.4, -0.7]]]
    l1, l2 = [0, 0, 0, 1, 2], [1, 1, 0, 2]
    method = get_method("contrastive_xbm").create(CTX, {"memory_size": 128, "in_batch_weight": weight})
    got1 = method(torch.tensor(first, dtype=torch.float64), torch.tensor(l1)).item()
    got2 = method(torch.tensor(second, dtype=torch.float64), torch.tensor(l2)).item()
    batch1 = _cosine_contrastive_by_hand(first, l1, first, l1)
    memory2 = _cosine_contrastive_by_hand(second, l2, first + second, l1 + l2, offset=len(first))
    batch2 = _cosine_contrastive_by_hand(second, l2, second, l2)
    assert got1 == pytest.approx(batch1 + weight * batch1, abs=1e-9)  # at first the memory is the batch
    assert got2 == pytest.approx(memory2 + weight * batch2, abs=1e-9)
    assert differs(memory2, batch2)
