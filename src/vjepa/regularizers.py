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
