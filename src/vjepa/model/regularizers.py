"""Collapse measures and penalties on a batch of vectors (N×D): VICReg-style variance and
covariance terms, and the effective rank used to monitor collapse."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def variance_hinge(x: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """Mean over dimensions of relu(gamma - std): zero once every dimension varies enough."""
    return F.relu(gamma - (x.var(dim=0) + eps).sqrt()).mean()


def covariance_penalty(x: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal covariances divided by D: decorrelates dimensions."""
    n, d = x.shape
    x = x - x.mean(dim=0)
    cov = (x.T @ x) / (n - 1)
    return (cov.square().sum() - cov.diagonal().square().sum()) / d


def effective_rank(x: torch.Tensor) -> float:
    """exp(entropy) of the normalised singular values of the centred matrix (Roy & Vetterli, 2007)."""
    s = torch.linalg.svdvals((x - x.mean(0)).float())
    p = s / s.sum().clamp_min(1e-12)
    return float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))


def invariance(views: torch.Tensor, num_global: int) -> torch.Tensor:
    """Mean squared difference between views of the same image: V×B×D, the first `num_global` of
    them global. Every view is paired with every other global view (local views with global views
    only, as in DINO's multi-crop) and each pair scores MSE over batch and dimensions; the mean over
    pairs is returned. With two global views this is VICReg's invariance term, MSE(z1, z2)."""
    v = views.shape[0]
    pairs = [(a, g) for g in range(num_global) for a in range(v) if a != g and not (a < num_global and a > g)]
    return torch.stack([F.mse_loss(views[a], views[g]) for a, g in pairs]).mean()


# Knots of the Epps-Pulley integral: t in [-5, 5] holds all but ~1e-6 of the weight exp(-t^2/2).
EP_KNOTS = torch.linspace(-5.0, 5.0, 17)


def epps_pulley(z: torch.Tensor) -> torch.Tensor:
    """Epps-Pulley statistic of each column of z (N×K) against the standard normal:
    N ∫ |φ_N(t) - exp(-t²/2)|² exp(-t²/2) dt, with φ_N the empirical characteristic function and
    the integral by the trapezoid rule on `EP_KNOTS`. For N(0, 1) samples its expectation is
    ∫ (1 - exp(-t²)) exp(-t²/2) dt = √(2π)(1 - 1/√3) ≈ 1.059, whatever N; it grows like N when
    the samples are not standard normal (a collapsed column scores ≈ 0.40 N)."""
    t = EP_KNOTS.to(z.device, z.dtype)
    arg = z[..., None] * t  # N×K×T
    real, imag = arg.cos().mean(0), arg.sin().mean(0)  # K×T
    gauss = torch.exp(-0.5 * t**2)
    err = ((real - gauss).square() + imag.square()) * gauss
    return z.shape[0] * torch.trapezoid(err, t, dim=-1)


def sigreg(x: torch.Tensor, num_projections: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """SIGReg (LeJEPA): the Epps-Pulley statistic of x (N×D) along `num_projections` random unit
    directions, averaged. Near 1.06 when x is isotropic standard normal, large when it is collapsed,
    shifted or scaled. Directions come from `generator` (CPU), or the global RNG."""
    a = torch.randn(x.shape[1], num_projections, generator=generator).to(x.device, x.dtype)
    a = a / a.norm(dim=0, keepdim=True)
    return epps_pulley(x @ a).mean()
