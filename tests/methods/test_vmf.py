"""vMF mathematics: normaliser against mpmath/scipy, Wood's sampler, densities, PPK and KL."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import torch
from scipy.special import ive

from benchmark.methods.vmf import (
    cosine_similarity, kl_vmf, log_bessel_iv, log_nivmf_density, log_vmf_density, log_vmf_normalizer,
    mean_resultant_length, ppk_vmf, sample_vmf,
)

KAPPAS = np.geomspace(0.5, 1000.0, 31)


def _mp_log_c(kappa: float, dim: int) -> float:
    nu = mp.mpf(dim) / 2 - 1
    with mp.workdps(40):
        return float(nu * mp.log(kappa) - mp.mpf(dim) / 2 * mp.log(2 * mp.pi) - mp.log(mp.besseli(nu, kappa)))


@pytest.mark.parametrize("dim", [3, 16, 128, 512])
def test_log_normalizer_matches_mpmath_and_scipy(dim):
    ours = log_vmf_normalizer(torch.tensor(KAPPAS, dtype=torch.float64), dim).numpy()
    ref = np.array([_mp_log_c(k, dim) for k in KAPPAS])
    assert np.abs(ours - ref).max() < 1e-5
    # scipy's exponentially scaled I underflows for high orders at small kappa: compare where it is > 0
    nu = dim / 2 - 1
    scaled = ive(nu, KAPPAS)
    ok = scaled > 0
    assert ok.sum() >= 10
    via_scipy = nu * np.log(KAPPAS[ok]) - dim / 2 * np.log(2 * np.pi) - (np.log(scaled[ok]) + KAPPAS[ok])
    assert np.abs(ours[ok] - via_scipy).max() < 1e-5


def test_log_normalizer_limits_dtype_and_authors_fit():
    # kappa -> 0: minus the log of the sphere's area, log Γ(D/2) − log 2 − (D/2) log π
    area = math.lgamma(64) - math.log(2) - 64 * math.log(math.pi)
    assert abs(log_vmf_normalizer(torch.tensor(1e-9, dtype=torch.float64), 128).item() - area) < 1e-6
    assert abs(log_vmf_normalizer(0.0, 128).item() - area) < 1e-6
    # D = 3 closed form C = κ / (4π sinh κ)
    for k in (0.5, 3.0, 40.0):
        closed = math.log(k) - math.log(4 * math.pi) - (k + math.log1p(-math.exp(-2 * k)) - math.log(2))
        assert abs(log_vmf_normalizer(torch.tensor(k, dtype=torch.float64), 3).item() - closed) < 1e-10
    assert log_vmf_normalizer(torch.tensor([5.0]), 128).dtype == torch.float32
    assert torch.isfinite(log_vmf_normalizer(torch.tensor([1e5, 1e7], dtype=torch.float64), 512)).all()
    # the authors' quadratic fit for D = 128 is off by ~3.5 at κ = 100
    fit = 127 - 0.01909 * 100 - 0.003355 * 100**2
    assert abs(fit - log_vmf_normalizer(torch.tensor(100.0, dtype=torch.float64), 128).item()) > 3.0
    with pytest.raises(ValueError):
        log_vmf_normalizer(torch.tensor(1.0), 1)


@pytest.mark.parametrize("nu", [0.0, 0.5, 2.0, 7.5, 19.5, 63.0])
def test_log_bessel_iv_small_and_large_orders(nu):
    xs = [0.01, 0.5, 3.0, 30.0, 700.0]
    ours = log_bessel_iv(nu, torch.tensor(xs, dtype=torch.float64)).numpy()
    with mp.workdps(40):
        ref = [float(mp.log(mp.besseli(nu, x))) for x in xs]
    assert np.abs(ours - np.array(ref)).max() < 1e-9


@pytest.mark.parametrize("dim", [16, 128])
def test_normalizer_gradient_is_minus_mean_resultant_length(dim):
    kappa = torch.tensor([0.7, 5.0, 60.0, 900.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(log_vmf_normalizer(kappa, dim).sum(), kappa)
    # d/dκ log C_D(κ) = −A_D(κ)
    assert torch.allclose(grad, -mean_resultant_length(kappa.detach(), dim), rtol=1e-8, atol=1e-12)
    assert torch.autograd.gradcheck(lambda k: log_vmf_normalizer(k, dim), (kappa[:2],))


@pytest.mark.parametrize("dim,kappa,n", [(3, 2.0, 4000), (16, 10.0, 2000), (128, 50.0, 1000), (128, 400.0, 500)])
def test_sampler_unit_norm_and_mean_resultant_length(dim, kappa, n):
    gen = torch.Generator().manual_seed(0)
    mu = torch.nn.functional.normalize(torch.randn(3, dim, dtype=torch.float64, generator=gen), dim=1)
    z = sample_vmf(mu, torch.full((3,), kappa), n, generator=gen)
    assert z.shape == (n, 3, dim)
    assert torch.allclose(z.norm(dim=-1), torch.ones(n, 3, dtype=torch.float64), atol=1e-10)
    w = (z * mu).sum(-1)
    a = mean_resultant_length(torch.tensor(kappa, dtype=torch.float64), dim).item()
    se = w.std().item() / math.sqrt(w.numel())
    assert abs(w.mean().item() - a) < 4 * se
    # the tangent part is uniform: E[z] = A_D(κ) μ
    tangent = z.mean(0) - w.mean(0, keepdim=True).T * mu
    assert tangent.norm(dim=1).max() < 6 * math.sqrt((1 - a * a) / n) + 1e-3


def test_sampler_generator_shapes_and_dtypes():
    mu = torch.randn(2, 8)
    a = sample_vmf(mu, torch.tensor([1.0, 5.0]), 4, generator=torch.Generator().manual_seed(3))
    b = sample_vmf(mu, torch.tensor([1.0, 5.0]), 4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.float32 and a.shape == (4, 2, 8)
    single = sample_vmf(torch.randn(5), 2.0, 6)
    assert single.shape == (6, 5)
    with pytest.raises(ValueError):
        sample_vmf(mu, torch.tensor([1.0, 2.0, 3.0]), 2)


def test_sampler_gradients_reach_mu_and_kappa():
    torch.manual_seed(0)
    mu = torch.randn(3, 16, requires_grad=True)
    kappa = torch.tensor([2.0, 10.0, 50.0], requires_grad=True)
    z = sample_vmf(mu, kappa, 7)
    (z * torch.randn(16)).sum().backward()
    assert mu.grad is not None and mu.grad.abs().sum() > 0 and torch.isfinite(mu.grad).all()
    assert kappa.grad is not None and (kappa.grad != 0).all() and torch.isfinite(kappa.grad).all()


def test_sampler_kappa_gradient_close_to_true_derivative():
    # d/dκ E[μᵀz] = A_D'(κ); the accepted-sample reparameterisation (no correction term) is close for D = 128
    dim, k = 128, 20.0
    kappa = torch.tensor([k], dtype=torch.float64, requires_grad=True)
    mu = torch.zeros(1, dim, dtype=torch.float64)
    mu[0, 0] = 1.0
    z = sample_vmf(mu, kappa, 4000, generator=torch.Generator().manual_seed(1))
    z[..., 0].mean().backward()
    h = 1e-5
    fd = (mean_resultant_length(torch.tensor(k + h, dtype=torch.float64), dim)
          - mean_resultant_length(torch.tensor(k - h, dtype=torch.float64), dim)).item() / (2 * h)
    assert abs(kappa.grad.item() - fd) < 0.03 * fd


def test_vmf_density_closed_form_d3_and_normalisation():
    gen = torch.Generator().manual_seed(0)
    mu = torch.nn.functional.normalize(torch.randn(3, dtype=torch.float64, generator=gen), dim=0)
    z = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64, generator=gen), dim=1)
    k = 2.5
    closed = math.log(k / (4 * math.pi * math.sinh(k))) + k * (z @ mu)
    assert torch.allclose(log_vmf_density(z, mu, k), closed, atol=1e-10)
    # integrates to 1 over the sphere (Monte-Carlo with uniform points), D = 3 and D = 16
    for dim, kk in ((3, 2.0), (16, 3.0)):
        u = torch.nn.functional.normalize(torch.randn(100000, dim, dtype=torch.float64, generator=gen), dim=1)
        m = torch.zeros(dim, dtype=torch.float64)
        m[0] = 1.0
        log_area = math.log(2) + dim / 2 * math.log(math.pi) - math.lgamma(dim / 2)
        integral = torch.exp(log_vmf_density(u, m, kk) + log_area).mean().item()
        assert abs(integral - 1.0) < 0.02


def test_nivmf_density_reduces_to_vmf_for_constant_concentrations():
    gen = torch.Generator().manual_seed(0)
    dim, k = 16, 7.0
    mu_c = torch.randn(4, dim, dtype=torch.float64, generator=gen)
    z = torch.nn.functional.normalize(torch.randn(3, 5, dim, dtype=torch.float64, generator=gen), dim=-1)
    k_c = torch.full((4, dim), k, dtype=torch.float64)
    out = log_nivmf_density(z, mu_c, k_c)
    assert out.shape == (3, 5, 4)
    expected = torch.stack([log_vmf_density(z, mu_c[c], k) for c in range(4)], dim=-1) + (dim - 1) * math.log(k)
    assert torch.allclose(out, expected, atol=1e-9)
    assert torch.allclose(log_nivmf_density(z, mu_c, k_c, transform_z=True), expected, atol=1e-9)
    assert log_nivmf_density(z, mu_c[0], k_c[0]).shape == (3, 5)
    # non-constant k: the documented formula; values below 0.1 are clamped
    k_c = torch.rand(4, dim, dtype=torch.float64, generator=gen) * 5
    k_c[0, :3] = 0.01
    kk = k_c.clamp_min(0.1)
    m = torch.nn.functional.normalize(mu_c, dim=1)
    km = kk * m
    norm = km.norm(dim=1)
    manual = z @ km.T + log_vmf_normalizer(norm, dim) + kk.log().sum(1) - norm.log()
    assert torch.allclose(log_nivmf_density(z, mu_c, k_c), manual, atol=1e-9)
    kz = z.unsqueeze(-2) * kk  # (3, 5, 4, D)
    manual_t = (kz * km).sum(-1) / kz.norm(dim=-1) + log_vmf_normalizer(norm, dim) + kk.log().sum(1) - norm.log()
    assert torch.allclose(log_nivmf_density(z, mu_c, k_c, transform_z=True), manual_t, atol=1e-9)


def test_ppk_expected_likelihood_and_bhattacharyya():
    gen = torch.Generator().manual_seed(0)
    # D = 3 closed form: PPK_1 = C(κ1) C(κ2) / C(‖κ1μ1 + κ2μ2‖), C(κ) = κ / (4π sinh κ)
    m1, m2 = torch.nn.functional.normalize(torch.randn(2, 3, dtype=torch.float64, generator=gen), dim=1)
    k1, k2 = 1.5, 4.0

    def c3(k):
        return math.log(k / (4 * math.pi * math.sinh(k)))

    k3 = (k1 * m1 + k2 * m2).norm().item()
    assert abs(ppk_vmf(m1, k1, m2, k2, rho=1.0).item() - (c3(k1) + c3(k2) - c3(k3))) < 1e-10
    # expected likelihood by Monte-Carlo: E_{z~p1}[p2(z)], D = 16
    dim = 16
    m1, m2 = torch.nn.functional.normalize(torch.randn(2, dim, dtype=torch.float64, generator=gen), dim=1)
    z = sample_vmf(m1.unsqueeze(0), torch.tensor([6.0]), 20000, generator=gen)[:, 0]
    mc = torch.exp(log_vmf_density(z, m2, 3.0)).mean().log().item()
    assert abs(ppk_vmf(m1, 6.0, m2, 3.0, rho=1.0).item() - mc) < 0.05
    # Bhattacharyya coefficient of a distribution with itself is 1
    assert abs(ppk_vmf(m1, 6.0, m1, 6.0, rho=0.5).item()) < 1e-9
    assert ppk_vmf(m1, 6.0, m2, 6.0, rho=0.5).item() < 0


def test_kl_zero_nonnegative_and_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    dim = 16
    mu1 = torch.nn.functional.normalize(torch.randn(50, dim, dtype=torch.float64, generator=gen), dim=1)
    mu2 = torch.nn.functional.normalize(torch.randn(50, dim, dtype=torch.float64, generator=gen), dim=1)
    k1 = torch.rand(50, dtype=torch.float64, generator=gen) * 100 + 0.5
    k2 = torch.rand(50, dtype=torch.float64, generator=gen) * 100 + 0.5
    assert kl_vmf(mu1, k1, mu1, k1).abs().max() < 1e-9
    assert (kl_vmf(mu1, k1, mu2, k2) >= -1e-12).all()
    assert (kl_vmf(mu1, k1, mu1, k2) >= -1e-12).all()
    z = sample_vmf(mu1[:1], k1[:1], 20000, generator=gen)[:, 0]
    mc = (log_vmf_density(z, mu1[0], k1[0]) - log_vmf_density(z, mu2[0], k2[0])).mean().item()
    assert abs(kl_vmf(mu1[0], k1[0], mu2[0], k2[0]).item() - mc) < 0.02 * max(1.0, mc)


def test_pairwise_matches_elementwise():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 8, dtype=torch.float64, generator=gen)
    b = torch.randn(3, 8, dtype=torch.float64, generator=gen)
    ka = torch.rand(4, dtype=torch.float64, generator=gen) * 20 + 0.5
    kb = torch.rand(3, dtype=torch.float64, generator=gen) * 20 + 0.5
    aa, bb = a.unsqueeze(1).expand(4, 3, 8), b.unsqueeze(0).expand(4, 3, 8)
    kaa, kbb = ka.unsqueeze(1).expand(4, 3), kb.unsqueeze(0).expand(4, 3)
    assert torch.allclose(ppk_vmf(a, ka, b, kb, 0.7, pairwise=True), ppk_vmf(aa, kaa, bb, kbb, 0.7), atol=1e-10)
    assert torch.allclose(kl_vmf(a, ka, b, kb, pairwise=True), kl_vmf(aa, kaa, bb, kbb), atol=1e-10)
    assert torch.allclose(cosine_similarity(a, b, pairwise=True), cosine_similarity(aa, bb), atol=1e-12)
