"""Mixture density network head (Bishop, 1994): per token, K diagonal Gaussians over the
D target dimensions.

Linear layers on `cond` (optionally after one hidden GELU layer) emit the mixture logits,
the component means and raw log-σ. log σ is squashed smoothly into
[min_log_sigma, max_log_sigma] with a tanh, so σ can neither collapse nor blow up and
the gradient never hits a hard wall. Loss = mixture NLL per token (exact, via logsumexp)
+ sigma_reg · mean((log σ²)²), a pull of every σ towards 1, the scale of the layer-normed
targets.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vjepa.model.heads.base import Head

_LOG_2PI = math.log(2 * math.pi)


def soft_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Smooth map of ℝ onto (low, high), slope 1 at the interval's centre."""
    centre, half = (high + low) / 2, (high - low) / 2
    return centre + half * torch.tanh((x - centre) / half)


def inverse_soft_clamp(y: float, low: float, high: float) -> float:
    centre, half = (high + low) / 2, (high - low) / 2
    return centre + half * math.atanh((y - centre) / half)


def diag_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag σ²) summed over the last dimension."""
    z = (x - mean) * torch.exp(-log_sigma)
    return -0.5 * (z.square().sum(-1) + x.shape[-1] * _LOG_2PI) - log_sigma.sum(-1)


class MDNHead(Head):
    exact_log_prob = True

    def __init__(
        self,
        cond_dim: int,
        target_dim: int,
        *,
        num_components: int = 5,
        hidden_dim: int = 0,
        min_log_sigma: float = -5.0,
        max_log_sigma: float = 2.0,
        sigma_reg: float = 1e-3,
    ):
        super().__init__(cond_dim, target_dim)
        if not min_log_sigma < 0.0 < max_log_sigma:
            raise ValueError("need min_log_sigma < 0 < max_log_sigma (σ = 1 must be reachable)")
        self.num_components = num_components
        self.log_sigma_bounds = (min_log_sigma, max_log_sigma)
        self.sigma_reg = sigma_reg
        k, d = num_components, target_dim
        if hidden_dim > 0:
            self.trunk: nn.Module = nn.Sequential(nn.Linear(cond_dim, hidden_dim), nn.GELU())
            feat_dim = hidden_dim
        else:
            self.trunk = nn.Identity()
            feat_dim = cond_dim
        self.logits = nn.Linear(feat_dim, k)
        self.means = nn.Linear(feat_dim, k * d)
        self.log_sigma = nn.Linear(feat_dim, k * d)
        with torch.no_grad():
            # Start with equal weights, components spread like the unit-variance targets and σ = 1.
            self.logits.weight.mul_(0.1)
            self.logits.bias.zero_()
            self.means.bias.normal_()
            self.log_sigma.weight.zero_()
            self.log_sigma.bias.fill_(inverse_soft_clamp(0.0, min_log_sigma, max_log_sigma))

    def mixture(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixture logits B×T×K, means B×T×K×D and clamped log σ B×T×K×D, all float32."""
        k, d = self.num_components, self.target_dim
        lead = cond.shape[:-1]
        # Float32 even under autocast: bf16 means and log σ would blur the density.
        with torch.autocast(device_type=cond.device.type, enabled=False):
            h = self.trunk(cond.float())
            logits = self.logits(h)
            means = self.means(h).view(*lead, k, d)
            log_sigma = soft_clamp(self.log_sigma(h).view(*lead, k, d), *self.log_sigma_bounds)
        return logits, means, log_sigma

    @staticmethod
    def _log_prob(logits, means, log_sigma, target):
        comp = diag_gaussian_log_prob(target.float().unsqueeze(-2), means, log_sigma)
        return torch.logsumexp(F.log_softmax(logits, dim=-1) + comp, dim=-1)

    def log_prob(self, cond: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._log_prob(*self.mixture(cond), target)

    def point(self, cond: torch.Tensor) -> torch.Tensor:
        logits, means, _ = self.mixture(cond)
        return (logits.softmax(-1).unsqueeze(-1) * means).sum(-2)

    def sample(self, cond: torch.Tensor, n: int) -> torch.Tensor:
        logits, means, log_sigma = self.mixture(cond)
        lead, (k, d) = logits.shape[:-1], means.shape[-2:]
        probs = logits.softmax(-1).reshape(-1, k)
        comp = torch.multinomial(probs, n, replacement=True).T  # n×N
        rows = torch.arange(probs.shape[0], device=cond.device)
        mu = means.reshape(-1, k, d)[rows, comp]  # n×N×D
        sigma = log_sigma.reshape(-1, k, d)[rows, comp].exp()
        draws = mu + sigma * torch.randn_like(mu)
        return draws.view(n, *lead, d)

    def loss(self, cond, target):
        logits, means, log_sigma = self.mixture(cond)
        nll = -self._log_prob(logits, means, log_sigma, target).mean()
        log_pi = F.log_softmax(logits, dim=-1)
        entropy = -(log_pi.exp() * log_pi).sum(-1)
        diag = {
            "nll": nll.detach(),
            "nll_per_dim": nll.detach() / self.target_dim,
            "mixture_entropy": entropy.mean().detach(),
            "effective_components": entropy.exp().mean().detach(),
            "sigma_mean": log_sigma.exp().mean().detach(),
        }
        total = nll / self.target_dim  # per dimension, on the scale of the other heads' losses
        if self.sigma_reg > 0:
            reg = (2 * log_sigma).square().mean()
            total = total + self.sigma_reg * reg
            diag["log_sigma_reg"] = reg.detach()
        return total, diag

    @torch.no_grad()
    def histograms(self, cond: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flat tensors for TensorBoard histograms: every σ and every mixture weight π."""
        logits, _, log_sigma = self.mixture(cond)
        return {"sigma": log_sigma.exp().flatten(), "mixture_weights": logits.softmax(-1).flatten()}
