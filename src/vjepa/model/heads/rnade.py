"""Autoregressive RNADE-style head: p(x | cond) = Π_i p(x_i | x_<i, cond).

The target token first passes through ActNorm, a per-dimension affine
y = (x - shift)·exp(-log_scale) initialised once from the first training batch
(mean/std per dimension) and then learned; its log-determinant enters the density, so
`log_prob` is exact in the target's coordinates. A MADE masked MLP (Germain et al., 2015)
maps y to the parameters of a K-component 1-D Gaussian mixture for every dimension, the
output for dimension i seeing only y_<i. Every hidden layer is FiLM-modulated by `cond`
(h ← h·(1+γ) + β, zero-initialised); dimension 1 sees no input at all, so a linear skip
from `cond` to the outputs (also zero-initialised) carries the conditioning there.

One pass of the network scores all D dimensions; sampling and `point` decode D sequential
passes, vectorised over every token and draw.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vjepa.core.distributed import row_moments
from vjepa.model.heads.base import Head

_LOG_2PI = math.log(2 * math.pi)

Mixture = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def soft_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Smooth map of ℝ onto (low, high), close to the identity well inside the interval."""
    return low + F.softplus(x - low) - F.softplus(x - high)


def made_masks(dim: int, hidden_dim: int, num_layers: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """0/1 masks (out×in) of the hidden layers and the D×H' output mask (H' = last width).

    Inputs have degrees 1..D, hidden units cyclic degrees in [1, D-1]; a hidden unit sees
    inputs of degree ≤ its own, and output i sees hidden units of degree < i (strictly).
    """
    in_deg = torch.arange(1, dim + 1)
    hid_deg = torch.arange(hidden_dim) % max(dim - 1, 1) + 1
    masks, prev = [], in_deg
    for _ in range(num_layers):
        masks.append((hid_deg[:, None] >= prev[None, :]).float())
        prev = hid_deg
    return masks, (prev[None, :] < in_deg[:, None]).float()


def mixture_log_prob(
    y: torch.Tensor, logits: torch.Tensor, means: torch.Tensor, log_sigma: torch.Tensor
) -> torch.Tensor:
    """log Σ_k π_k N(y; μ_k, σ_k²) for y of shape (...) and parameters of shape (..., K)."""
    z = (y.unsqueeze(-1) - means) * torch.exp(-log_sigma)
    comp = -0.5 * (z.square() + _LOG_2PI) - log_sigma
    return torch.logsumexp(F.log_softmax(logits, dim=-1) + comp, dim=-1)


class MaskedLinear(nn.Linear):
    """Linear layer whose weight is multiplied by a fixed 0/1 connectivity mask (out×in)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        # Rebuilt from the settings on construction, so not stored in checkpoints.
        self.register_buffer("mask", mask, persistent=False)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


class ActNorm(nn.Module):
    """y = (x - shift)·exp(-log_scale), data-initialised once from the first training batch."""

    def __init__(self, dim: int, min_std: float = 1e-2):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))
        self.min_std = min_std
        self._ready: bool | None = None  # host copy of `initialized`: one device sync, not one per step

    @torch.no_grad()
    def initialize_once(self, x: torch.Tensor) -> None:
        """Set shift/log_scale from the rows of x (N×D) unless that has already happened."""
        if self._ready is None:
            self._ready = bool(self.initialized)
        if self._ready:
            return
        mean, std = row_moments(x)  # over the global batch in a distributed run
        self.shift.copy_(mean)
        self.log_scale.copy_(std.clamp_min(self.min_std).log())
        self.initialized.fill_(True)
        self._ready = True

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._ready = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) * torch.exp(-self.log_scale)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(self.log_scale) + self.shift


class RNADEHead(Head):
    exact_log_prob = True

    def __init__(
        self,
        cond_dim: int,
        target_dim: int,
        *,
        hidden_dim: int = 256,
        num_layers: int = 2,
        num_components: int = 3,
        min_log_sigma: float = -5.0,
        max_log_sigma: float = 2.0,
    ):
        super().__init__(cond_dim, target_dim)
        if num_layers > 0 and hidden_dim < target_dim - 1:
            raise ValueError(
                f"hidden_dim={hidden_dim} < target_dim-1={target_dim - 1}: some MADE degrees would "
                "be missing and the last dimensions could not depend on the earlier ones"
            )
        if not min_log_sigma < max_log_sigma:
            raise ValueError("need min_log_sigma < max_log_sigma")
        self.num_components = k = num_components
        self.log_sigma_bounds = (min_log_sigma, max_log_sigma)
        self.actnorm = ActNorm(target_dim)
        hidden_masks, out_mask = made_masks(target_dim, hidden_dim, num_layers)
        self.layers = nn.ModuleList(MaskedLinear(m) for m in hidden_masks)
        self.films = nn.ModuleList(nn.Linear(cond_dim, 2 * hidden_dim) for _ in hidden_masks)
        # Output unit i·3K + j belongs to dimension i: (logits, means, raw log σ) × K.
        self.out = MaskedLinear(out_mask.repeat_interleave(3 * k, dim=0))
        self.cond_out = nn.Linear(cond_dim, target_dim * 3 * k)
        with torch.no_grad():
            for film in self.films:
                nn.init.zeros_(film.weight)
                nn.init.zeros_(film.bias)
            nn.init.zeros_(self.cond_out.weight)
            nn.init.zeros_(self.cond_out.bias)
            # Equal weights, means spread over the ActNorm'd unit scale, σ ≈ 1.
            bias = self.out.bias.view(target_dim, 3, k)
            bias.zero_()
            bias[:, 1] = torch.linspace(-1.0, 1.0, k) if k > 1 else 0.0

    # -- the network ---------------------------------------------------------------------
    def _conditioning(self, c: torch.Tensor) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """Per-layer FiLM (γ, β) and the N×D×3K output skip: computed once per token."""
        films = [tuple(f(c).chunk(2, dim=-1)) for f in self.films]
        return films, self.cond_out(c).unflatten(-1, (self.target_dim, -1))

    def _hidden(self, y: torch.Tensor, films) -> torch.Tensor:
        h = y
        for layer, (gamma, beta) in zip(self.layers, films):
            h = F.silu(layer(h) * (1 + gamma) + beta)
        return h

    def _split(self, out: torch.Tensor) -> Mixture:
        """(..., 3K) raw outputs → logits, means, clamped log σ, each (..., K)."""
        logits, means, raw = out.unflatten(-1, (3, self.num_components)).unbind(-2)
        return logits, means, soft_clamp(raw, *self.log_sigma_bounds)

    def _mixture_flat(self, c: torch.Tensor, y: torch.Tensor) -> Mixture:
        films, skip = self._conditioning(c)
        out = self.out(self._hidden(y, films)).unflatten(-1, (self.target_dim, -1)) + skip
        return self._split(out)

    @staticmethod
    def _flat(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, t.shape[-1]).float()

    def mixture(self, cond: torch.Tensor, target: torch.Tensor) -> Mixture:
        """Conditional mixtures of every dimension given the earlier ones of `target`:
        logits, means, log σ, each B×T×D×K, in ActNorm coordinates (float32)."""
        lead = cond.shape[:-1]
        with torch.autocast(device_type=cond.device.type, enabled=False):
            y = self.actnorm(self._flat(target))
            params = self._mixture_flat(self._flat(cond), y)
        return tuple(p.view(*lead, self.target_dim, self.num_components) for p in params)

    def _log_prob_flat(self, c: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, Mixture]:
        y = self.actnorm(x)
        params = self._mixture_flat(c, y)
        logp = mixture_log_prob(y, *params).sum(-1) - self.actnorm.log_scale.sum()
        return logp, params

    def log_prob(self, cond: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=cond.device.type, enabled=False):
            logp, _ = self._log_prob_flat(self._flat(cond), self._flat(target))
        return logp.view(cond.shape[:-1])

    def loss(self, cond, target):
        with torch.autocast(device_type=cond.device.type, enabled=False):
            c, x = self._flat(cond), self._flat(target)
            if self.training:
                self.actnorm.initialize_once(x)
            logp, (logits, _, log_sigma) = self._log_prob_flat(c, x)
        nll = -logp.mean()
        with torch.no_grad():
            log_pi = F.log_softmax(logits, dim=-1)
            entropy = -(log_pi.exp() * log_pi).sum(-1)
            diag = {
                "nll": nll.detach(),
                "nll_per_dim": nll.detach() / self.target_dim,
                "effective_components": entropy.exp().mean(),
                # σ in the target's coordinates (ActNorm's scale folded back in).
                "sigma_mean": (log_sigma + self.actnorm.log_scale[:, None]).exp().mean(),
            }
        return nll / self.target_dim, diag  # per dimension, on the scale of the other heads' losses

    # -- sequential decoding -------------------------------------------------------------
    def _decode(self, c: torch.Tensor, pick) -> torch.Tensor:
        """Fill y one dimension at a time with pick(logits, means, log σ) → N; return x = ActNorm⁻¹(y)."""
        films, skip = self._conditioning(c)
        weight, bias, k3 = self.out.masked_weight(), self.out.bias, 3 * self.num_components
        y = c.new_zeros(c.shape[0], self.target_dim)
        for i in range(self.target_dim):
            rows = slice(i * k3, (i + 1) * k3)
            out = F.linear(self._hidden(y, films), weight[rows], bias[rows]) + skip[:, i]
            y[:, i] = pick(*self._split(out))
        return self.actnorm.inverse(y)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, n: int) -> torch.Tensor:
        """n independent draws per token: D sequential passes over all n×B×T tokens at once."""

        def draw(logits, means, log_sigma):
            comp = torch.multinomial(logits.softmax(-1), 1)
            mu, ls = means.gather(-1, comp).squeeze(-1), log_sigma.gather(-1, comp).squeeze(-1)
            return mu + ls.exp() * torch.randn_like(mu)

        with torch.autocast(device_type=cond.device.type, enabled=False):
            c = self._flat(cond).repeat(n, 1)  # draw-major, so the result views as n×B×T×D
            x = self._decode(c, draw)
        return x.view(n, *cond.shape[:-1], self.target_dim)

    @torch.no_grad()
    def point(self, cond: torch.Tensor) -> torch.Tensor:
        """Greedy sequential conditional mean: y_i = E[y_i | y_<i = the values already chosen].

        One pass over D. This is not the exact joint mean E[x] (that would average over the
        earlier dimensions' uncertainty); it is exact for the first dimension only."""

        def mean(logits, means, log_sigma):
            return (logits.softmax(-1) * means).sum(-1)

        with torch.autocast(device_type=cond.device.type, enabled=False):
            x = self._decode(self._flat(cond), mean)
        return x.view(*cond.shape[:-1], self.target_dim)
