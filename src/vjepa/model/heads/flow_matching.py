"""Conditional flow matching head (Lipman et al. 2023) on the straight noise-to-token path.

Training: x0 ~ N(0, I), x1 = teacher token, t ~ U(0, 1), x_t = (1 - t)·x0 + t·x1; a velocity
field v(x_t, t, cond) regresses the path's velocity u = x1 - x0 (MSE, several (x0, t) draws per
token). Sampling integrates dx/dt = v(x, t, cond) from noise at t = 0 to t = 1.

The velocity field is a residual MLP with adaptive layer norm: each block is modulated by
(sinusoidal time embedding → MLP) + linear(cond). Modulation and output layers start at zero,
so v ≡ 0 at initialisation. There is no tractable density without a trace integral, so
`exact_log_prob` is False.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn

from vjepa.core.distributed import draw
from vjepa.model.heads.adaln import ResBlock, modulate, timestep_embedding
from vjepa.model.heads.base import Head

Velocity = Callable[[torch.Tensor, float], torch.Tensor]
SOLVERS = ("euler", "heun")


def integrate(velocity: Velocity, x: torch.Tensor, steps: int, solver: str = "heun") -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t) from t = 0 to t = 1 with `steps` uniform steps.

    "euler" uses one evaluation per step; "heun" (explicit trapezoid) uses two and is second
    order. The state is kept in float32 whatever dtype `velocity` returns.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver '{solver}'; choose one of {SOLVERS}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = x.float()
    h = 1.0 / steps
    for i in range(steps):
        t = i * h
        k1 = velocity(x, t).float()
        if solver == "euler":
            x = x + h * k1
        else:
            k2 = velocity(x + h * k1, t + h).float()
            x = x + 0.5 * h * (k1 + k2)
    return x


class VelocityNet(nn.Module):
    """v(x, t, c) with x …×D, t …, c …×H (the projected cond); the leading shapes broadcast.

    The modulations are computed at the broadcast shape of (t, c), not of x, so a shared t
    (sampling) or a cond shared by several draws costs one modulation per distinct (t, c).
    """

    def __init__(self, target_dim: int, hidden_dim: int, num_blocks: int, freq_dim: int = 128):
        super().__init__()
        self.freq_dim = freq_dim
        self.time_mlp = nn.Sequential(nn.Linear(freq_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        self.inp = nn.Linear(target_dim, hidden_dim)
        self.blocks = nn.ModuleList(ResBlock(hidden_dim) for _ in range(num_blocks))
        self.out_norm = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=1e-6)
        self.out_ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, 2 * hidden_dim))
        self.out = nn.Linear(hidden_dim, target_dim)
        for layer in (self.out_ada[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        c = c + self.time_mlp(timestep_embedding(1000.0 * t, self.freq_dim))  # t ∈ [0, 1] → span the frequencies
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.out_ada(c).chunk(2, dim=-1)
        return self.out(modulate(self.out_norm(h), shift, scale))


class FlowMatchingHead(Head):
    exact_log_prob = False

    def __init__(
        self,
        cond_dim: int,
        target_dim: int,
        *,
        hidden_dim: int = 256,
        num_blocks: int = 3,
        noise_draws: int = 2,
        sample_steps: int = 50,
        solver: str = "heun",
    ):
        super().__init__(cond_dim, target_dim)
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver '{solver}'; choose one of {SOLVERS}")
        if noise_draws < 1:
            raise ValueError(f"noise_draws must be >= 1, got {noise_draws}")
        self.cond_proj = nn.Linear(cond_dim, hidden_dim)
        self.net = VelocityNet(target_dim, hidden_dim, num_blocks)
        self.noise_draws = noise_draws
        self.sample_steps = sample_steps
        self.solver = solver

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """v(x, t, cond): x …×D, t …, cond …×C with broadcastable leading shapes → …×D."""
        return self.net(x, t, self.cond_proj(cond))

    def loss(self, cond, target):
        c = self.cond_proj(cond.reshape(-1, self.cond_dim).float())  # N×H, shared by the draws
        x1 = target.reshape(-1, self.target_dim).float().expand(self.noise_draws, -1, -1)  # k×N×D
        # drawn for the global batch (rows along dim 1), so the draws do not depend on the number of ranks
        x0 = draw(lambda s: torch.randn(s, device=x1.device), x1.shape, dim=1)
        t = draw(lambda s: torch.rand(s, device=x1.device), x1.shape[:-1], dim=1)
        xt = (1 - t[..., None]) * x0 + t[..., None] * x1
        v = self.net(xt, t, c).float()
        mse = (v - (x1 - x0)).pow(2).mean()
        v_norm = v.detach().norm(dim=-1).mean() / math.sqrt(self.target_dim)
        return mse, {"fm_mse": mse.detach(), "v_norm": v_norm}

    def _flow(self, cond: torch.Tensor, x0: torch.Tensor, steps: int | None, solver: str | None) -> torch.Tensor:
        """Push x0 (…×N×D) through the learned flow map from t = 0 to t = 1; cond is N×C."""
        c = self.cond_proj(cond.float())  # constant along the trajectory: project once

        def v(x: torch.Tensor, t: float) -> torch.Tensor:
            return self.net(x, torch.full((1,), t, device=x.device), c)

        steps = self.sample_steps if steps is None else steps
        return integrate(v, x0, steps, solver or self.solver)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, n: int, steps: int | None = None, solver: str | None = None) -> torch.Tensor:
        """n independent draws per token (n×B×T×D): Gaussian noise pushed through the learned ODE.

        `steps` and `solver` override the configured `sample_steps` and `solver` for this call.
        """
        flat = cond.reshape(-1, self.cond_dim)
        x0 = torch.randn(n, flat.shape[0], self.target_dim, device=cond.device)
        return self._flow(flat, x0, steps, solver).reshape(n, *cond.shape[:-1], self.target_dim)

    @torch.no_grad()
    def point(self, cond: torch.Tensor, steps: int | None = None, solver: str | None = None) -> torch.Tensor:
        """The image of the noise mode x0 = 0 under the learned flow map: B×T×D, deterministic.

        For a Gaussian target the straight-path flow map is affine and sends 0 to the mean. For other
        targets it need be neither the mean nor a mode: with two symmetric modes it lands between them.
        """
        flat = cond.reshape(-1, self.cond_dim)
        x0 = torch.zeros(flat.shape[0], self.target_dim, device=cond.device)
        return self._flow(flat, x0, steps, solver).reshape(*cond.shape[:-1], self.target_dim)
