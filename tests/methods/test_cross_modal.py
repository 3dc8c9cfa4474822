"""The cross-modal losses: the lecture's bidirectional triplet against its formula written out, the reference and
shared modes of registered losses, and the registry's cross-modal field."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning import losses

from benchmark.errors import RegistryError
from benchmark.methods import MethodContext, get_method, list_methods, register_method, unregister_method
from benchmark.methods.base import PMLMethod
from benchmark.methods.cross_modal import cross_modal_loss, triplet_hinge, why_not_cross_modal
from benchmark.methods.search_space import Float

CTX = MethodContext(num_classes=4, embedding_dim=8)


def _batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ea = torch.randn(12, 8, generator=gen)
    la = torch.arange(4).repeat_interleave(3)
    eb = torch.randn(8, 8, generator=gen)
    lb = torch.arange(4).repeat_interleave(2)
    return ea, la, eb, lb


def _d(x: torch.Tensor, y: torch.Tensor) -> float:
    """Euclidean distance between the L2-normalised vectors, element by element."""
    nx, ny = math.sqrt(sum(v * v for v in x.tolist())), math.sqrt(sum(v * v for v in y.tolist()))
    return math.sqrt(sum((a / nx - b / ny) ** 2 for a, b in zip(x.tolist(), y.tolist())))


def _lecture_triplet(anchors, al, refs, rl, m, same_set=False) -> float:
    """(1/|T|) Σ over triplets (a from anchors; p, n from refs; p same class, n not) of max(0, m + d(a,p) - d(a,n))."""
    total, count = 0.0, 0
    for i in range(len(anchors)):
        for p in range(len(refs)):
            if rl[p] != al[i] or (same_set and p == i):
                continue
            for n in range(len(refs)):
                if rl[n] == al[i]:
                    continue
                total += max(0.0, m + _d(anchors[i], refs[p]) - _d(anchors[i], refs[n]))
                count += 1
    return total / count


@pytest.mark.parametrize("within", [0.0, 0.5])
def test_bidirectional_triplet_is_the_lectures_l1_plus_l2(within):
    ea, la, eb, lb = _batch()
    spec = get_method("bidirectional_triplet")
    loss = cross_modal_loss(spec, spec.create(CTX, {"margin": 0.3, "within_weight": within}))
    got = loss(ea, la, eb, lb).item()
    l1 = _lecture_triplet(ea, la, eb, lb, 0.3)   # anchor in domain 1, positive and negative in domain 2
    l2 = _lecture_triplet(eb, lb, ea, la, 0.3)   # the reverse
    within_terms = _lecture_triplet(ea, la, ea, la, 0.3, True) + _lecture_triplet(eb, lb, eb, lb, 0.3, True)
    assert got == pytest.approx(l1 + l2 + within * within_terms, rel=1e-5)
    assert l1 != pytest.approx(l2)  # the two directions are different sums


def test_triplet_hinge_gradients_reach_both_towers_and_is_zero_without_triplets():
    ea, la, eb, lb = _batch()
    ea.requires_grad_(True)
    eb.requires_grad_(True)
    triplet_hinge(ea, la, eb, lb, 0.5).backward()
    assert ea.grad.abs().sum() > 0 and eb.grad.abs().sum() > 0
    one_class = torch.zeros(3, dtype=torch.long)
    assert triplet_hinge(ea[:3], one_class, eb[:3], one_class, 0.5).item() == 0.0


def test_reference_mode_is_the_loss_with_the_other_modality_as_references_in_both_directions():
    ea, la, eb, lb = _batch()
    spec = get_method("contrastive")
    got = cross_modal_loss(spec, spec.create(CTX))(ea, la, eb, lb)
    pml = losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0)
    want = pml(ea, la, ref_emb=eb, ref_labels=lb) + pml(eb, lb, ref_emb=ea, ref_labels=la)
    assert got.item() == pytest.approx(want.item())
    # no within-modality pair counts: moving A's items among themselves, with B fixed, keeps A -> B distances
    assert got.item() != pytest.approx((pml(ea, la) + pml(eb, lb)).item())


def test_shared_mode_pulls_both_modalities_to_the_same_proxies():
    ea, la, eb, lb = _batch()
    spec = get_method("proxy_anchor")
    torch.manual_seed(0)
    method = spec.create(CTX)
    loss = cross_modal_loss(spec, method)
    assert loss(ea, la, eb, lb).item() == pytest.approx((method(ea, la) + method(eb, lb)).item())
    assert loss.optimizer_groups(1e-6, 0.0)[0]["params"][0] is method.loss.proxies


def test_every_cross_modal_method_trains_both_towers():
    for spec in list_methods():
        if spec.cross_modal is None:
            assert why_not_cross_modal(spec).startswith(f"method {spec.name!r} has no cross-modal mode")
            continue
        ea, la, eb, lb = _batch(1)
        ea.requires_grad_(True)
        eb.requires_grad_(True)
        torch.manual_seed(0)
        value = cross_modal_loss(spec, spec.create(CTX))(ea, la, eb, lb)
        value.backward()
        assert math.isfinite(value.item()), spec.name
        assert ea.grad.abs().sum() > 0 and eb.grad.abs().sum() > 0, spec.name


def test_registry_refuses_an_unknown_cross_modal_mode():
    with pytest.raises(RegistryError, match="cross_modal must be one of reference, shared, native"):
        @register_method(name="xm_bad", display_name="X", source="nobody", search_space={"m": Float(0, 1)},
                         defaults={"m": 0.5}, cross_modal="sideways")
        def xm_bad(hp, ctx):
            """Nothing."""
            return PMLMethod(losses.ContrastiveLoss(pos_margin=hp["m"]))
    unregister_method("xm_bad")
