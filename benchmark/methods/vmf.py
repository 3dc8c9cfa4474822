"""von Mises–Fisher (vMF) mathematics for probabilistic embeddings: normaliser, sampler, densities, kernels.

Used by the EL-nivMF method (``benchmark.methods.library.prob_proxies``; Kirchhof, Roth, Akata,
Kasneci, "A Non-isotropic Probabilistic Take on Proxy-based Deep Metric Learning", ECCV 2022).
Everything is differentiable torch code; it runs in float64 internally and returns the dtype of
its (floating) input.

vMF on the unit sphere S^{D-1} ⊂ R^D:  p(z; μ, κ) = C_D(κ) exp(κ μᵀz),

    log C_D(κ) = (D/2 − 1) log κ − (D/2) log 2π − log I_{D/2−1}(κ).

``log_bessel_iv(ν, x)`` — log I_ν(x) by the uniform asymptotic (Debye / Olver) expansion for large
order (DLMF 10.41.3): with z = x/ν, s = √(1+z²), t = 1/s, η = s + log(z / (1 + s)),

    log I_ν(νz) = −½ log(2πν) + νη − ½ log s + log(1 + Σ_{k=1..8} u_k(t)/ν^k),

u_k the Debye polynomials (u_0 = 1, u_{k+1} = ½t²(1−t²)u_k' + ⅛∫₀ᵗ(1−5s²)u_k ds, generated exactly
with fractions at import, and summed into one polynomial in t per order ν). With 8 terms the
expansion is used for ν ≥ 20, where its error is below 1e-12 for every x > 0 (uniform in x).
For ν < 20 (D < 42) we take the expansion at the orders n = ν+m and ν+m+1 (m the smallest
integer with ν+m ≥ 20) and run the recurrence I_{n−1}(x) = (2n/x) I_n(x) + I_{n+1}(x) downwards
in log space through the ratio r_n = I_{n+1}/I_n: log I_{n−1} = log I_n + log(2n/x + r_n),
r_{n−1} = 1/(2n/x + r_n). Downward recurrence is the stable direction for I (every term is
positive: no cancellation), so the result keeps the expansion's accuracy.

Valid range: every D ≥ 2 and every κ > 0 (κ is clamped at 1e-8 in the normaliser; D < 2 raises
ValueError). The tests check 1e-5 (absolute, on log C) against mpmath for D ∈ {3, 16, 128, 512}
and κ ∈ [0.5, 1000]; measured errors are below 1e-12 in float64 (a float32 κ and result are
rounded to ~4e-5 at |log C| ~ 500, so pass float64 where 1e-5 matters). No scipy fallback is
needed, and autograd works everywhere (d/dκ log C_D(κ) = −A_D(κ), checked in the tests).

The authors' code approximates log C_D by a quadratic fit in κ (``approx_log_cp``:
127 − 0.01909κ − 0.003355κ² for D = 128), which is off by about 3.5 at κ = 100, D = 128 (and is
not a function of D at all); we use the exact expansion instead.

``sample_vmf`` — Wood's (1994) rejection sampler for the radial component w = μᵀz, whose density is
∝ exp(κw)(1−w²)^{(D−3)/2}: b = (D−1)/(2κ + √(4κ² + (D−1)²)) (the cancellation-free form of
(−2κ + √(4κ²+(D−1)²))/(D−1)), x₀ = (1−b)/(1+b), c = κx₀ + (D−1) log(1−x₀²); propose
ε ~ Beta((D−1)/2, (D−1)/2), w = (1 − (1+b)ε)/(1 − (1−b)ε), accept if
κw + (D−1) log(1 − x₀w) − c ≥ log U. A uniform tangent direction v ⊥ e₁ completes
x = (w, √(1−w²) v), and the Householder reflection taking e₁ to μ gives z. The Beta variate is drawn
as χ²_{D−1}/(χ²_{D−1} + χ²'_{D−1}) from normal variates so that a ``torch.Generator`` can be used.

Gradients: to μ exactly through the Householder reflection; to κ by the accepted-sample
reparameterisation of Davidson et al. (UAI 2018, "Hyperspherical VAEs"): the accepted ε is held
fixed and w(ε, b(κ)) is differentiated. Davidson et al.'s score-function correction term for the
dependence of the acceptance event on κ is omitted — as in the authors' code (their
``utilities/vmf_sampler.py``, from s-vae-pytorch) and in most vMF-VAE code; it is small when the
acceptance rate is high (Wood's sampler accepts > 50% of proposals everywhere, ~100% for large D).
Unlike the authors' sampler we need no Taylor blend of b for large κ (the form above does not
cancel) and compute 1 − w² = 4bε(1−ε)/(1−(1−b)ε)² without cancellation.

Densities and kernels between vMFs (μ unit vectors, κ > 0):

- ``log_vmf_density(z, μ, κ)`` = log C_D(κ) + κ μᵀz.
- ``log_nivmf_density(z, μ_c, k_c)``: the class proxy of the paper is a "non-isotropic" vMF with a
  direction μ_c and a per-dimension concentration vector k_c (clamped at ≥ 0.1). The text this project
  read of the paper is its abstract, so the exact form is the authors' public code (in their repository,
  ``log_ppk_vmf_vec`` in ``utilities/misc.py``, used by ``criteria/proxyvmf_panc.py``, the criterion of
  their published runs; see ``docs/explanation/seed-methods.md``): with κ̃ = k_c ⊙ μ_c,

      l(z, c) = log C_D(‖κ̃‖) + ⟨κ̃, z⟩ + Σ_d log k_{c,d} − log ‖κ̃‖.

  Its normaliser is approximated by the vMF normaliser at ‖κ̃‖ and the last two terms are the
  authors' log-determinant term. Note that as a function of z this is a vMF with direction κ̃/‖κ̃‖
  and concentration ‖κ̃‖ (isotropic around κ̃); the per-dimension k_c acts through that direction and
  the constant. ``transform_z=True`` gives the genuinely non-isotropic variant of the authors'
  ``criteria/proxynca_nivmf.py`` (in their repository), where z is first mapped to (k_c ⊙ z)/‖k_c ⊙ z‖:
  l(z, c) = log C_D(‖κ̃‖) + ⟨κ̃, k_c⊙z⟩/‖k_c⊙z‖ + Σ_d log k_{c,d} − log ‖κ̃‖.
- ``ppk_vmf(μ₁, κ₁, μ₂, κ₂, ρ)``: log of the probability product kernel ∫ p₁^ρ p₂^ρ dz
  = ρ(log C_D(κ₁) + log C_D(κ₂)) − log C_D(ρ‖κ₁μ₁ + κ₂μ₂‖) (ρ = 1: expected likelihood,
  ρ = ½: Bhattacharyya; Jebara & Kondor 2003).
- ``kl_vmf(μ₁, κ₁, μ₂, κ₂)`` = KL(p₁ ‖ p₂) = log C_D(κ₁) − log C_D(κ₂) + A_D(κ₁)(κ₁ − κ₂ μ₂ᵀμ₁),
  A_D(κ) = I_{D/2}(κ)/I_{D/2−1}(κ) = E_{p₁}[μ₁ᵀz] (``mean_resultant_length``). The authors' KL
  criterion used A_D ≈ 1 and the quadratic log C fit; ours is exact.
- ``cosine_similarity(μ₁, μ₂)``: the deterministic baseline.

The kernels broadcast elementwise over leading dimensions, or with ``pairwise=True`` take (N, D)
and (M, D) directions with (N,) and (M,) concentrations and return (N, M) from one matrix product
(‖κ₁μ₁ + κ₂μ₂‖² = κ₁² + κ₂² + 2κ₁κ₂ μ₁ᵀμ₂), so that class counts in the tens of thousands fit.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Optional, Union

import torch
import torch.nn.functional as F

__all__ = [
    "DEBYE_MIN_ORDER", "DEBYE_TERMS", "cosine_similarity", "kl_vmf", "log_bessel_iv", "log_nivmf_density",
    "log_vmf_density", "log_vmf_normalizer", "mean_resultant_length", "ppk_vmf", "sample_vmf",
]

#: Terms u_1 … u_K of the Debye series.
DEBYE_TERMS = 8
#: Smallest order at which the expansion is used directly; below it, downward recurrence.
DEBYE_MIN_ORDER = 20.0
#: Concentrations are clamped at this value before the normaliser (log κ, 2n/κ).
MIN_KAPPA = 1e-8
#: Most rejection rounds of the sampler before it gives up.
MAX_REJECTION_ROUNDS = 1000

Number = Union[float, torch.Tensor]


def _debye_polynomials(n_terms: int) -> list[list[float]]:
    """Coefficients (ascending powers of t) of u_1 … u_n, exact in fractions, then as floats."""
    polys = [[Fraction(1)]]
    for _ in range(n_terms):
        u = polys[-1]
        du = [i * c for i, c in enumerate(u)][1:]
        nxt = [Fraction(0)] * (len(u) + 4)
        for i, c in enumerate(du):  # ½ t² (1 − t²) u'
            nxt[i + 2] += c / 2
            nxt[i + 4] -= c / 2
        for i, c in enumerate(u):  # ⅛ ∫₀ᵗ (1 − 5s²) u(s) ds
            nxt[i + 1] += c / (8 * (i + 1))
            nxt[i + 3] -= 5 * c / (8 * (i + 3))
        while nxt and nxt[-1] == 0:
            nxt.pop()
        polys.append(nxt)
    return [[float(c) for c in p] for p in polys[1:]]


_DEBYE_U = _debye_polynomials(DEBYE_TERMS)


def _horner(coeffs: list[float], t: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(t, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        out = out * t + c
    return out


def _to64(x: Number, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(torch.float64)
    device = like.device if like is not None else None
    return torch.tensor(float(x), dtype=torch.float64, device=device)


def _out_dtype(x: Number) -> torch.dtype:
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.dtype
    return torch.float64


@functools.lru_cache(maxsize=256)
def _debye_series(nu: float) -> tuple[float, ...]:
    """Coefficients (ascending powers of t) of Σ_{k=1..K} u_k(t) / ν^k, one polynomial for a fixed ν."""
    out = [0.0] * (3 * DEBYE_TERMS + 1)
    for k, coeffs in enumerate(_DEBYE_U, start=1):
        for j, c in enumerate(coeffs):
            out[j] += c / nu**k
    while len(out) > 1 and out[-1] == 0.0:
        out.pop()
    return tuple(out)


def _debye_log_iv(nu: float, x: torch.Tensor) -> torch.Tensor:
    """log I_ν(x) from the uniform asymptotic expansion (ν ≥ DEBYE_MIN_ORDER, x > 0, float64)."""
    z = x / nu
    s = torch.sqrt(1.0 + z * z)
    t = 1.0 / s
    eta = s + torch.log(z) - torch.log1p(s)
    series = _horner(list(_debye_series(nu)), t)
    return -0.5 * math.log(2.0 * math.pi * nu) + nu * eta - 0.5 * torch.log(s) + torch.log1p(series)


def _log_iv(nu: float, x: torch.Tensor, with_ratio: bool = False
            ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(log I_ν(x), I_{ν+1}(x)/I_ν(x) if ``with_ratio`` else None) for ν ≥ −½ and x > 0 (float64)."""
    if nu >= DEBYE_MIN_ORDER:
        log_i = _debye_log_iv(nu, x)
        ratio = torch.exp(_debye_log_iv(nu + 1.0, x) - log_i) if with_ratio else None
        return log_i, ratio
    steps = math.ceil(DEBYE_MIN_ORDER - nu)
    top = nu + steps
    log_i = _debye_log_iv(top, x)
    ratio = torch.exp(_debye_log_iv(top + 1.0, x) - log_i)  # r_n = I_{n+1}/I_n at n = top
    for j in range(steps):
        n = top - j
        q = 2.0 * n / x + ratio  # I_{n−1}/I_n
        log_i = log_i + torch.log(q)
        ratio = 1.0 / q
    return log_i, ratio


def log_bessel_iv(nu: float, x: Number) -> torch.Tensor:
    """log I_ν(x), the modified Bessel function of the first kind, for ν ≥ −½ and x > 0.

    Uniform asymptotic expansion (8 Debye terms) for ν ≥ 20, downward recurrence from order ≥ 20
    below; absolute error ~1e-12. Differentiable in ``x``; returns the dtype of ``x``.
    """
    if nu < -0.5:
        raise ValueError(f"log_bessel_iv needs an order nu >= -1/2, got {nu}")
    x64 = _to64(x)
    return _log_iv(float(nu), x64)[0].to(_out_dtype(x))


def _check_dim(dim: int) -> int:
    dim = int(dim)
    if dim < 2:
        raise ValueError(f"the vMF needs a dimension D >= 2 (a sphere S^(D-1) with a continuum of points), got {dim}")
    return dim


def log_vmf_normalizer(kappa: Number, dim: int) -> torch.Tensor:
    """log C_D(κ) = (D/2 − 1) log κ − (D/2) log 2π − log I_{D/2−1}(κ), for D ≥ 2 and any κ ≥ 0.

    κ is clamped at 1e-8 (log C_D is continuous at 0, where it equals −log of the sphere's area).
    Differentiable in κ; computed in float64, returned in the dtype of ``kappa``.
    """
    dim = _check_dim(dim)
    k = _to64(kappa).clamp_min(MIN_KAPPA)
    nu = dim / 2.0 - 1.0
    log_i = _log_iv(nu, k)[0]
    out = nu * torch.log(k) - (dim / 2.0) * math.log(2.0 * math.pi) - log_i
    return out.to(_out_dtype(kappa))


def mean_resultant_length(kappa: Number, dim: int) -> torch.Tensor:
    """A_D(κ) = I_{D/2}(κ) / I_{D/2−1}(κ) = E[μᵀz] under vMF(μ, κ) on S^{D−1} (differentiable)."""
    dim = _check_dim(dim)
    k = _to64(kappa).clamp_min(MIN_KAPPA)
    return _log_iv(dim / 2.0 - 1.0, k, with_ratio=True)[1].to(_out_dtype(kappa))


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


def _chi2(shape: tuple, dof: int, generator: Optional[torch.Generator], device: torch.device) -> torch.Tensor:
    g = torch.randn(*shape, dof, generator=generator, device=device, dtype=torch.float64)
    return (g * g).sum(-1)


def _sample_radial(kappa: torch.Tensor, dim: int, generator: Optional[torch.Generator]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(w, b, ε): w = μᵀz of vMF samples (Wood 1994), reparameterised in κ through b(κ) with the accepted
    Beta variate ε held fixed; ``kappa`` of any shape (float64)."""
    m1 = float(dim - 1)
    b = m1 / (2.0 * kappa + torch.sqrt(4.0 * kappa * kappa + m1 * m1))
    device = kappa.device
    with torch.no_grad():
        bd, kd = b.detach(), kappa.detach()
        x0 = (1.0 - bd) / (1.0 + bd)
        # 1 − x0² = 4b/(1+b)², no cancellation
        c = kd * x0 + m1 * (math.log(4.0) + torch.log(bd) - 2.0 * torch.log1p(bd))
        eps = torch.full_like(kd, float("nan"))
        pending = torch.ones_like(kd, dtype=torch.bool)
        for _ in range(MAX_REJECTION_ROUNDS):
            idx = pending.nonzero(as_tuple=True)
            n = idx[0].numel()
            if n == 0:
                break
            x = _chi2((n,), dim - 1, generator, device)
            y = _chi2((n,), dim - 1, generator, device)
            e = x / (x + y)
            u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
            bb, kk, xx0, cc = bd[idx], kd[idx], x0[idx], c[idx]
            w = (1.0 - (1.0 + bb) * e) / (1.0 - (1.0 - bb) * e)
            accept = kk * w + m1 * torch.log1p(-xx0 * w) - cc >= torch.log(u)
            acc_idx = tuple(i[accept] for i in idx)
            eps[acc_idx] = e[accept]
            pending[acc_idx] = False
        if pending.any():
            raise RuntimeError(f"vMF rejection sampler did not accept within {MAX_REJECTION_ROUNDS} rounds")
    # reparameterised in κ: ε fixed, w(ε, b(κ)) differentiated
    return (1.0 - (1.0 + b) * eps) / (1.0 - (1.0 - b) * eps), b, eps


def sample_vmf(mu: torch.Tensor, kappa: Number, n_samples: int,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``n_samples`` reparameterised draws from vMF(μ_b, κ_b) for each row b.

    ``mu``: (B, D) directions (normalised here) or one (D,) direction; ``kappa``: (B,), (B, 1) or a
    scalar. Returns (n_samples, B, D) unit vectors ((n_samples, D) for a 1-d ``mu``), in the dtype of
    ``mu``. Gradients reach ``mu`` (Householder reflection) and ``kappa`` (accepted-sample
    reparameterisation, Davidson et al. 2018, without the score-function correction).
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    single = mu.dim() == 1
    mu2 = mu.unsqueeze(0) if single else mu
    if mu2.dim() != 2:
        raise ValueError(f"mu must have shape (B, D) or (D,), got {tuple(mu.shape)}")
    batch, dim = mu2.shape
    dim = _check_dim(dim)
    device = mu2.device
    mu64 = F.normalize(mu2.to(torch.float64), dim=-1)
    k64 = _to64(kappa, like=mu2).reshape(-1)
    if k64.numel() == 1:
        k64 = k64.expand(batch)
    if k64.numel() != batch:
        raise ValueError(f"kappa has {k64.numel()} values for {batch} directions")
    k64 = k64.clamp_min(MIN_KAPPA)
    kk = k64.unsqueeze(0).expand(n_samples, batch)
    w, b, eps = _sample_radial(kk, dim, generator)
    one_minus_w2 = 4.0 * b * eps * (1.0 - eps) / (1.0 - (1.0 - b) * eps) ** 2
    v = torch.randn(n_samples, batch, dim - 1, generator=generator, device=device, dtype=torch.float64)
    v = F.normalize(v, dim=-1)
    x = torch.cat([w.unsqueeze(-1), torch.sqrt(one_minus_w2.clamp_min(1e-300)).unsqueeze(-1) * v], dim=-1)
    # Householder reflection H = I − 2uuᵀ with u = (e₁ − μ)/‖e₁ − μ‖ maps e₁ to μ
    e1 = torch.zeros(dim, dtype=torch.float64, device=device)
    e1[0] = 1.0
    u = e1 - mu64
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    z = x - 2.0 * (x * u).sum(-1, keepdim=True) * u
    z = z.to(mu.dtype if mu.is_floating_point() else torch.float64)
    return z[:, 0] if single else z


# ---------------------------------------------------------------------------------------------
# Densities and similarities
# ---------------------------------------------------------------------------------------------


def log_vmf_density(z: torch.Tensor, mu: torch.Tensor, kappa: Number) -> torch.Tensor:
    """log vMF(z; μ, κ) = log C_D(κ) + κ μᵀz, broadcasting z (..., D), μ (..., D), κ (...) to (...)."""
    dim = z.shape[-1]
    mu = F.normalize(mu.to(torch.float64), dim=-1)
    k = _to64(kappa, like=z)
    out = log_vmf_normalizer(k, dim) + k * (z.to(torch.float64) * mu).sum(-1)
    return out.to(_out_dtype(z))


def log_nivmf_density(z: torch.Tensor, mu_c: torch.Tensor, k_c: torch.Tensor, *,
                      min_concentration: float = 0.1, transform_z: bool = False) -> torch.Tensor:
    """Log-density of the authors' non-isotropic vMF proxies at unit vectors z (see the module docstring).

    ``z``: (..., D) unit vectors; ``mu_c``: (C, D) proxy directions (normalised here) and ``k_c``:
    (C, D) per-dimension concentrations (clamped at ``min_concentration``) → (..., C), the
    log-density of every z under every proxy (matrix products only). A 1-d ``mu_c``/``k_c`` (one
    proxy) gives (...).
    l(z, c) = log C_D(‖k_c⊙μ_c‖) + ⟨k_c⊙μ_c, z⟩ + Σ_d log k_{c,d} − log ‖k_c⊙μ_c‖; with
    ``transform_z`` the inner product is ⟨k_c⊙μ_c, k_c⊙z⟩ / ‖k_c⊙z‖.
    """
    single = mu_c.dim() == 1
    mu = F.normalize(mu_c.to(torch.float64).reshape(-1, mu_c.shape[-1]), dim=-1)
    k = k_c.to(torch.float64).reshape(mu.shape).clamp_min(min_concentration)
    dim = mu.shape[-1]
    km = k * mu  # (C, D)
    kappa = km.norm(dim=-1).clamp_min(MIN_KAPPA)  # (C,)
    z64 = z.to(torch.float64)
    if transform_z:
        dot = (z64 @ (k * km).T) / torch.sqrt((z64 * z64) @ (k * k).T)
    else:
        dot = z64 @ km.T
    const = log_vmf_normalizer(kappa, dim) + torch.log(k).sum(-1) - torch.log(kappa)
    out = dot + const
    out = out.to(_out_dtype(z))
    return out[..., 0] if single else out


def _pair_terms(mu1: torch.Tensor, k1: Number, mu2: torch.Tensor, k2: Number,
                pairwise: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(κ₁, κ₂, μ₁ᵀμ₂) in float64, broadcast elementwise or as an (N, M) grid."""
    m1 = F.normalize(mu1.to(torch.float64), dim=-1)
    m2 = F.normalize(mu2.to(torch.float64), dim=-1)
    a = _to64(k1, like=mu1).clamp_min(MIN_KAPPA)
    b = _to64(k2, like=mu2).clamp_min(MIN_KAPPA)
    if pairwise:
        if m1.dim() != 2 or m2.dim() != 2:
            raise ValueError("pairwise=True needs (N, D) and (M, D) directions")
        cos = m1 @ m2.T
        a = a.reshape(-1, 1).expand_as(cos) if a.numel() > 1 else a
        b = b.reshape(1, -1).expand_as(cos) if b.numel() > 1 else b
        return a, b, cos
    return a, b, (m1 * m2).sum(-1)


def ppk_vmf(mu1: torch.Tensor, k1: Number, mu2: torch.Tensor, k2: Number, rho: float = 0.5, *,
            pairwise: bool = False) -> torch.Tensor:
    """log ∫ vMF(z; μ₁, κ₁)^ρ vMF(z; μ₂, κ₂)^ρ dz = ρ(log C(κ₁) + log C(κ₂)) − log C(ρ‖κ₁μ₁ + κ₂μ₂‖).

    ρ = 1: expected likelihood kernel; ρ = ½: Bhattacharyya kernel. Elementwise (broadcasting) or,
    with ``pairwise``, (N, M) for (N, D) and (M, D) directions.
    """
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    dim = mu1.shape[-1]
    a, b, cos = _pair_terms(mu1, k1, mu2, k2, pairwise)
    k3 = torch.sqrt((a * a + b * b + 2.0 * a * b * cos).clamp_min(MIN_KAPPA**2))
    out = rho * (log_vmf_normalizer(a, dim) + log_vmf_normalizer(b, dim)) - log_vmf_normalizer(rho * k3, dim)
    return out.to(_out_dtype(mu1))


def kl_vmf(mu1: torch.Tensor, k1: Number, mu2: torch.Tensor, k2: Number, *,
           pairwise: bool = False) -> torch.Tensor:
    """KL(vMF(μ₁, κ₁) ‖ vMF(μ₂, κ₂)) = log C(κ₁) − log C(κ₂) + A_D(κ₁)(κ₁ − κ₂ μ₁ᵀμ₂) (≥ 0)."""
    dim = mu1.shape[-1]
    a, b, cos = _pair_terms(mu1, k1, mu2, k2, pairwise)
    out = log_vmf_normalizer(a, dim) - log_vmf_normalizer(b, dim) + mean_resultant_length(a, dim) * (a - b * cos)
    return out.to(_out_dtype(mu1))


def cosine_similarity(mu1: torch.Tensor, mu2: torch.Tensor, *, pairwise: bool = False) -> torch.Tensor:
    """μ₁ᵀμ₂ of the normalised directions (elementwise, or (N, M) with ``pairwise``)."""
    m1 = F.normalize(mu1, dim=-1)
    m2 = F.normalize(mu2, dim=-1)
    return m1 @ m2.T if pairwise else (m1 * m2).sum(-1)
