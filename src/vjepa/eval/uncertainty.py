"""How good a head's predicted distributions are, from samples: proper scores, calibration, spread.

Every function takes `samples` n×T×D (n draws for each of T target tokens of width D) and
`target` T×D, so every head is scored the same way; the deterministic head is a point mass
(n = 1, or n identical draws).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def energy_score(samples: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-token energy score E‖X − y‖ − ½ E‖X − X′‖ (lower is better; a proper scoring rule).

    The unbiased estimate: the mean distance of the draws to the target, minus half the mean
    distance between distinct draws (zero for a single draw, so a point mass scores ‖x − y‖).
    """
    n = samples.shape[0]
    to_target = (samples - target[None]).norm(dim=-1).mean(0)
    if n < 2:
        return to_target
    x = samples.transpose(0, 1)  # T×n×D
    pairwise = _pairwise_sum(x) / (n * (n - 1))
    return to_target - 0.5 * pairwise


def _pairwise_sum(x: torch.Tensor) -> torch.Tensor:
    """Σ_ij ‖x_i − x_j‖ per token (x: T×n×D), computed directly: the matmul shortcut is off by ~1e-4
    for identical draws."""
    return torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist").sum(dim=(1, 2))


def coverage(samples: torch.Tensor, target: torch.Tensor, levels=(0.5, 0.9)) -> dict[float, float]:
    """Fraction of target coordinates inside the central per-dimension interval of the draws, per level
    (a calibrated head covers each level's nominal fraction)."""
    out = {}
    for level in levels:
        lo, hi = torch.quantile(
            samples.float(), torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float32), dim=0
        )
        out[level] = ((target >= lo) & (target <= hi)).float().mean().item()
    return out


def pit(samples: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Probability integral transform per target coordinate (T×D): the fraction of draws below the
    target, ties split at random. Uniform on [0, 1] for a calibrated head."""
    below = (samples < target[None]).float().sum(0)
    ties = (samples == target[None]).float().sum(0)
    u = torch.rand(target.shape, generator=generator)
    return (below + u * (ties + 1)) / (samples.shape[0] + 1)


def spread_error_correlation(samples: torch.Tensor, point: torch.Tensor, target: torch.Tensor) -> float:
    """Spearman rank correlation, over tokens, between the predicted spread (mean per-dimension variance
    of the draws) and the error of the point prediction (‖point − target‖). Positive when the head's
    uncertainty is larger where it is more wrong; nan when the spread is constant (a point mass)."""
    spread = samples.float().var(dim=0).mean(-1) if samples.shape[0] > 1 else torch.zeros(target.shape[0])
    error = (point - target).norm(dim=-1)
    return _spearman(spread.numpy(), error.numpy())


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def mean_pairwise_distance(samples: torch.Tensor) -> float:
    """Mean distance between distinct draws of the same token (0 for a point mass)."""
    n = samples.shape[0]
    if n < 2:
        return 0.0
    x = samples.transpose(0, 1).float()
    return (_pairwise_sum(x) / (n * (n - 1))).mean().item()


def count_modes(draws: torch.Tensor, max_modes: int = 5, seed: int = 0) -> int:
    """Number of distinct modes among the draws of one token (n×D): the number of Gaussian mixture
    components that minimises BIC on the draws' top-2 principal components. At most one component
    per 4 draws (a 2-D Gaussian needs several points); a fit that degenerates does not count."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    x = draws.double().numpy()
    x = x - x.mean(0)
    if not np.any(x):
        return 1
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    z = x @ vt[:2].T
    max_modes = max(1, min(max_modes, len(np.unique(z.round(6), axis=0)), len(z) // 4))
    reg = 1e-6 * max(float(z.var(0).max()), 1e-12)  # scale-aware floor on the covariances

    def bic(k: int) -> float:
        try:
            return GaussianMixture(k, random_state=seed, n_init=2, reg_covar=reg).fit(z).bic(z)
        except ValueError:  # collapsed components
            return np.inf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bics = [bic(k) for k in range(1, max_modes + 1)]
    return int(np.argmin(bics)) + 1
