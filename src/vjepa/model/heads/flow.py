"""Conditional RealNVP (Dinh et al. 2017): an exact density over each target token.

x → z runs `num_layers` steps of ActNorm followed by an affine coupling; z is standard
normal, and log p(x | cond) = log N(z; 0, I) + Σ log|det| of every step.

- ActNorm (Glow): per-dimension y = x · exp(log_scale) + bias, initialised from the first
  training batch so that its output there has zero mean and unit variance per dimension.
  The `initialized` buffer makes this happen once and travel with the state_dict.
- Coupling: the token is split at D // 2 into halves; layer k keeps one half x_a and
  transforms the other, x_b ← x_b · exp(s) + t with (s, t) = MLP([x_a, cond]). Even
  layers transform the second half, odd layers the first (alternating masks, no
  permutations). s is soft-clamped to ±scale_clamp by s = c · tanh(s_raw / c). Each
  conditioner's last layer is zero-initialised, so every coupling starts as the identity.

Sampling is single shot (z ~ N(0, I) pushed through the inverse); `point` is the image
of the base mode z = 0, which is neither the mean nor in general the mode of p(x | cond).
The density math runs in the parameters' dtype with autocast off, so the inverse stays
exact and the log-determinant is not computed in bf16.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from vjepa.core.distributed import row_moments
from vjepa.model.heads.base import Head

_LOG_2PI = math.log(2 * math.pi)


class ActNorm(nn.Module):
    """Per-dimension affine map with data-dependent initialisation on the first training batch."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))
        self.eps = eps
        self._ready: bool | None = None  # host-side cache of `initialized`, so steady state never syncs

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._ready = None

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        mean, std = row_moments(x)  # over the global batch in a distributed run
        log_scale = -torch.log(std + self.eps)
        self.log_scale.copy_(log_scale)
        self.bias.copy_(-mean * log_scale.exp())
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N×D) → (y, log|det| as a scalar shared by every row)."""
        if self.training and not self._ready:
            self._ready = bool(self.initialized)
            if not self._ready:
                self._initialize(x)
                self._ready = True
        return x * self.log_scale.exp() + self.bias, self.log_scale.sum()

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.bias) * torch.exp(-self.log_scale)


def _mlp(in_dim: int, hidden_dim: int, out_dim: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        mods += [nn.Linear(width, hidden_dim), nn.SiLU()]
        width = hidden_dim
    last = nn.Linear(width, out_dim)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*mods, last)


class AffineCoupling(nn.Module):
    """x_b ← x_b · exp(s) + t with (s, t) = MLP([x_a, cond]); `flip` swaps which half is x_b."""

    def __init__(self, dim: int, cond_dim: int, hidden_dim: int, layers: int, clamp: float, flip: bool):
        super().__init__()
        self.split = dim // 2
        self.flip = flip
        keep, change = (dim - self.split, self.split) if flip else (self.split, dim - self.split)
        self.net = _mlp(keep + cond_dim, hidden_dim, 2 * change, layers)
        self.clamp = clamp

    def _halves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = x[:, : self.split], x[:, self.split :]
        return (hi, lo) if self.flip else (lo, hi)

    def _merge(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([b, a] if self.flip else [a, b], dim=-1)

    def _scale_shift(self, a: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s_raw, t = self.net(torch.cat([a, cond], dim=-1)).chunk(2, dim=-1)
        return self.clamp * torch.tanh(s_raw / self.clamp), t

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (N×D) → (y, log|det| per row, max |s|)."""
        a, b = self._halves(x)
        s, t = self._scale_shift(a, cond)
        return self._merge(a, b * s.exp() + t), s.sum(-1), s.detach().abs().amax()

    def inverse(self, y: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        a, b = self._halves(y)
        s, t = self._scale_shift(a, cond)
        return self._merge(a, (b - t) * torch.exp(-s))


class FlowHead(Head):
    exact_log_prob = True

    def __init__(
        self,
        cond_dim: int,
        target_dim: int,
        *,
        num_layers: int = 6,
        hidden_dim: int = 256,
        conditioner_layers: int = 2,
        scale_clamp: float = 2.0,
    ):
        super().__init__(cond_dim, target_dim)
        if target_dim < 2:
            raise ValueError("FlowHead needs target_dim >= 2 (couplings split the token in halves)")
        self.norms = nn.ModuleList(ActNorm(target_dim) for _ in range(num_layers))
        self.couplings = nn.ModuleList(
            AffineCoupling(target_dim, cond_dim, hidden_dim, conditioner_layers, scale_clamp, flip=k % 2 == 1)
            for k in range(num_layers)
        )

    def _flatten(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
        """Broadcast the leading dims of x (…×D) and cond (…×C); flatten both to rows in the params' dtype."""
        lead = torch.broadcast_shapes(x.shape[:-1], cond.shape[:-1])
        dtype = self.norms[0].log_scale.dtype
        x = x.to(dtype).expand(*lead, self.target_dim).reshape(-1, self.target_dim)
        cond = cond.to(dtype).expand(*lead, self.cond_dim).reshape(-1, self.cond_dim)
        return x, cond, lead

    def _transform(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, log|det| per token, max |s| over couplings)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            h, c, lead = self._flatten(x, cond)
            logdet = h.new_zeros(h.shape[0])
            scale_max = h.new_zeros(())
            for norm, coupling in zip(self.norms, self.couplings):
                h, ld = norm(h)
                logdet = logdet + ld
                h, ld, smax = coupling(h, c)
                logdet = logdet + ld
                scale_max = torch.maximum(scale_max, smax)
        return h.reshape(*lead, -1), logdet.reshape(lead), scale_max

    def transform(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data → base: (z with x's shape, log|det ∂z/∂x| per token)."""
        z, logdet, _ = self._transform(x, cond)
        return z, logdet

    def inverse(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Base → data; leading dims of z and cond broadcast."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            h, c, lead = self._flatten(z, cond)
            for norm, coupling in zip(reversed(self.norms), reversed(self.couplings)):
                h = norm.inverse(coupling.inverse(h, c))
        return h.reshape(*lead, -1)

    def _log_prob(self, cond, target):
        z, logdet, scale_max = self._transform(target, cond)
        base = -0.5 * (z.pow(2).sum(-1) + self.target_dim * _LOG_2PI)
        return base + logdet, logdet, scale_max

    def log_prob(self, cond: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._log_prob(cond, target)[0]

    def loss(self, cond, target):
        logp, logdet, scale_max = self._log_prob(cond, target)
        nll = -logp.mean()
        # The loss is per dimension, on the scale of the other heads' losses.
        return nll / self.target_dim, {
            "nll": nll.detach(),
            "nll_per_dim": nll.detach() / self.target_dim,
            "logdet": logdet.detach().mean(),
            "scale_abs_max": scale_max,
        }

    def sample(self, cond: torch.Tensor, n: int) -> torch.Tensor:
        dtype = self.norms[0].log_scale.dtype
        z = torch.randn(n, *cond.shape[:-1], self.target_dim, device=cond.device, dtype=dtype)
        return self.inverse(z, cond)

    def point(self, cond: torch.Tensor) -> torch.Tensor:
        """The image of the base distribution's mode z = 0 (not the mean of p(x | cond))."""
        dtype = self.norms[0].log_scale.dtype
        z = torch.zeros(*cond.shape[:-1], self.target_dim, device=cond.device, dtype=dtype)
        return self.inverse(z, cond)
