"""Per-token denoising diffusion over teacher tokens (DDPM training, DDIM sampling).

Each target token x0 ∈ R^D is noised as x_t = sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·ε with a linear
β schedule, and a small denoiser predicts ε from (x_t, t, cond); the loss is the ε-MSE
(Ho et al. 2020). The denoiser is a residual MLP whose blocks are modulated by adaptive
layer norm on (timestep embedding + projected cond), with zero-initialised modulation
and output layers so the untrained head predicts ε = 0 (as in MAR's `diffloss.py`).
Sampling runs DDIM (Song et al. 2021) over evenly spaced timesteps; η = 0 is a
deterministic map of the initial noise. There is no exact density: `log_prob` is absent, and
`nll_bound` gives the DDPM variational upper bound on −log p instead (Ho et al. 2020, Eq. 5).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from vjepa.core.distributed import draw
from vjepa.model.heads.adaln import ResBlock, modulate, timestep_embedding
from vjepa.model.heads.base import Head

#: ε-predictor: (x_t of shape N×D, integer timesteps of shape N) → predicted ε (N×D).
EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def linear_alpha_bar(timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """ᾱ_t = Π_{s≤t} (1 − β_s) for β linear from beta_start to beta_end (float64, length T)."""
    betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def ddim_timesteps(timesteps: int, steps: int) -> list[int]:
    """`steps` evenly spaced timesteps from T−1 down to 0 (both included; duplicates dropped)."""
    if steps < 1:
        raise ValueError(f"need at least one sampling step, got {steps}")
    return torch.linspace(timesteps - 1, 0, steps, dtype=torch.float64).round().long().unique_consecutive().tolist()


def ddim_sample(
    eps_fn: EpsFn, x: torch.Tensor, alpha_bar: torch.Tensor, steps: int, eta: float = 0.0, x0_clip: float = 0.0
) -> torch.Tensor:
    """Run DDIM from x = x_{T−1} (N×D) to x_0 with the ε-predictor `eps_fn`.

    Each step forms x̂0 = (x_t − sqrt(1−ᾱ_t)·ε̂)/sqrt(ᾱ_t) and moves to the next timestep s
    (ᾱ_s = 1 after the last): x_s = sqrt(ᾱ_s)·x̂0 + sqrt(1−ᾱ_s−σ²)·ε̂ + σ·z with
    σ = η·sqrt((1−ᾱ_s)/(1−ᾱ_t))·sqrt(1−ᾱ_t/ᾱ_s). η = 0 is deterministic given x; η = 1 is
    the DDPM posterior variance over the strided steps. With `x0_clip` > 0, x̂0 is clamped to
    ±x0_clip and ε̂ recomputed from it: at high noise x̂0 divides the ε̂ error by sqrt(ᾱ_t) ≈ 0.006,
    and an imperfect denoiser would otherwise throw samples far off the data.
    """
    abar = alpha_bar.tolist()  # one host copy instead of a sync per step
    ts = ddim_timesteps(len(abar), steps)
    x = x.float()
    for i, t in enumerate(ts):
        a_t = abar[t]
        a_s = abar[ts[i + 1]] if i + 1 < len(ts) else 1.0
        t_vec = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        eps = eps_fn(x, t_vec).float()
        x0 = (x - math.sqrt(1.0 - a_t) * eps) / math.sqrt(a_t)
        if x0_clip > 0:
            x0 = x0.clamp(-x0_clip, x0_clip)
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1.0 - a_t)
        sigma = eta * math.sqrt((1.0 - a_s) / (1.0 - a_t) * (1.0 - a_t / a_s))
        x = math.sqrt(a_s) * x0 + math.sqrt(max(1.0 - a_s - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * torch.randn_like(x)
    return x


class Denoiser(nn.Module):
    """ε̂(x_t, t, cond): residual MLP with adaptive layer norm on (time MLP + cond projection).

    Unlike MAR there is no layer norm before the output layer: its scale invariance caps |ε̂|,
    while at high noise ε ≈ x_t, so noise draws in the tails (common when D is small) get an
    ε̂ that is too small and DDIM runs them off to infinity. The residual stream keeps a linear
    path from x_t to the output instead.
    """

    def __init__(self, target_dim: int, cond_dim: int, width: int, num_blocks: int):
        super().__init__()
        self.width = width
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.cond_proj = nn.Linear(cond_dim, width)
        self.inp = nn.Linear(target_dim, width)
        self.blocks = nn.ModuleList(ResBlock(width) for _ in range(num_blocks))
        self.out_ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, target_dim)
        nn.init.zeros_(self.out_ada[-1].weight)  # the blocks' modulation is zero-initialised by ResBlock
        nn.init.zeros_(self.out_ada[-1].bias)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = self.time_mlp(timestep_embedding(t, self.width)) + self.cond_proj(cond)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.out_ada(c).chunk(2, dim=-1)
        return self.out(modulate(h, shift, scale))


class DiffusionHead(Head):
    exact_log_prob = False

    def __init__(
        self,
        cond_dim: int,
        target_dim: int,
        *,
        timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        hidden_dim: int = 256,
        num_blocks: int = 3,
        noise_draws: int = 4,
        sample_steps: int = 50,
        fast_sample_steps: int = 25,
        eta: float = 0.0,
        x0_clip: float = 0.0,
    ):
        super().__init__(cond_dim, target_dim)
        if noise_draws < 1:
            raise ValueError(f"noise_draws must be ≥ 1, got {noise_draws}")
        self.timesteps = timesteps
        self.noise_draws = noise_draws
        self.sample_steps = sample_steps
        self.fast_sample_steps = fast_sample_steps
        self.eta = eta
        self.x0_clip = x0_clip
        alpha_bar = linear_alpha_bar(timesteps, beta_start, beta_end)
        # Sampling starts from N(0, I), which is only right if the last step is (nearly) pure noise.
        if alpha_bar[-1] > 1e-2:
            raise ValueError(
                f"the β schedule ends at ᾱ_T = {alpha_bar[-1]:.3g}, not noise; with fewer timesteps "
                f"scale beta_start and beta_end up (e.g. by 1000/timesteps)"
            )
        self.net = Denoiser(target_dim, cond_dim, hidden_dim, num_blocks)
        # Rebuilt from the settings, so kept out of the state dict.
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Forward noising x_t = sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·ε (N×D, t of shape N)."""
        a = self.alpha_bar[t].unsqueeze(-1)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def loss(self, cond, target):
        k = self.noise_draws
        c = cond.reshape(-1, self.cond_dim).float().repeat(k, 1)
        x0 = target.reshape(-1, self.target_dim).float().repeat(k, 1)
        # Draw order (t, then ε) is fixed so a seeded caller can reproduce the draws; both are drawn for
        # the global batch (k draws × every rank's tokens), so they do not depend on the number of ranks.
        n, dev = x0.shape[0] // k, x0.device
        t = draw(lambda s: torch.randint(0, self.timesteps, s, device=dev), (k, n), dim=1).reshape(-1)
        eps = draw(lambda s: torch.randn(s, device=dev), (k, n, self.target_dim), dim=1).reshape(-1, self.target_dim)
        pred = self.net(self.q_sample(x0, t, eps), t, c).float()
        # Mean over all k draws of every token = the average of k per-draw losses.
        loss = F.mse_loss(pred, eps)
        return loss, {"eps_mse": loss.detach()}

    @torch.no_grad()
    def nll_bound(self, cond: torch.Tensor, target: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """An unbiased one-draw estimate of the DDPM variational bound on −log p(target | cond), per
        token (nats, B×T): KL(q(x_T|x0) ‖ N(0, I)) + Σ_{t≥2} KL(q(x_{t−1}|x_t, x0) ‖ p(x_{t−1}|x_t))
        − log p(x0|x_1), every timestep included, one ε per token and timestep. The reverse steps
        use the posterior variance β̃_t (β_1 for the last, where β̃_1 = 0), so each KL is a
        weighted ε-error: β_t² / (2 β̃_t α_t (1 − ᾱ_t)) · |ε − ε̂|²."""
        lead = target.shape[:-1]
        x0 = target.reshape(-1, self.target_dim).float()
        x0_cpu = x0.double().cpu()  # the bound is summed in float64 on the CPU
        c = cond.reshape(-1, self.cond_dim).float()
        abar = self.alpha_bar.double().cpu()
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        beta = 1 - abar / abar_prev
        alpha = 1 - beta
        beta_tilde = (1 - abar_prev) / (1 - abar) * beta
        # Weight of |ε − ε̂|² in each term; index 0 is the decoder −log N(x0; μ̂, β_1).
        weight = torch.cat([(1 / (2 * alpha[:1])), beta[1:] ** 2 / (2 * beta_tilde[1:] * alpha[1:] * (1 - abar[1:]))])
        n, d = x0.shape
        a_T = abar[-1].item()
        total = 0.5 * (a_T * (x0_cpu**2).sum(-1) - d * (a_T + math.log(1 - a_T)))  # the prior KL
        total = total + 0.5 * d * math.log(2 * math.pi * beta[0].item())  # the decoder's normaliser
        for start in range(0, self.timesteps, chunk):
            ts = torch.arange(start, min(start + chunk, self.timesteps))
            t = ts.repeat_interleave(n).to(target.device)
            x = x0.repeat(len(ts), 1)
            eps = torch.randn_like(x)
            err = (self.net(self.q_sample(x, t, eps), t, c.repeat(len(ts), 1)).float() - eps).pow(2).sum(-1)
            total = total + (weight[ts].repeat_interleave(n) * err.double().cpu()).reshape(len(ts), n).sum(0)
        return total.float().reshape(lead)

    def _denoise(self, x_T: torch.Tensor, cond: torch.Tensor, steps: int, eta: float) -> torch.Tensor:
        c = cond.float()
        return ddim_sample(lambda x, t: self.net(x, t, c), x_T, self.alpha_bar, steps, eta, self.x0_clip)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, n: int, steps: int | None = None) -> torch.Tensor:
        """n independent DDIM draws per token (η = `eta`), all n×B×T tokens in one batch."""
        lead = cond.shape[:-1]
        c = cond.reshape(-1, self.cond_dim).repeat(n, 1)
        x_T = torch.randn(c.shape[0], self.target_dim, device=cond.device)
        x = self._denoise(x_T, c, self.sample_steps if steps is None else steps, self.eta)
        return x.reshape(n, *lead, self.target_dim)

    def sample_fast(self, cond: torch.Tensor, n: int) -> torch.Tensor:
        return self.sample(cond, n, steps=self.fast_sample_steps)

    @torch.no_grad()
    def point(self, cond: torch.Tensor) -> torch.Tensor:
        """DDIM (η = 0) from x_T = 0, the mode of the initial noise: deterministic, no RNG used.

        For a Gaussian target this lands on its mean; in general it is the probability-flow
        image of the noise's centre, not the conditional mean. In high dimension x_T = 0 lies
        far inside the noise shell the denoiser was trained on (|x_T| ≈ sqrt(D)), so for an
        unbiased summary prefer the average of `sample` draws.
        """
        lead = cond.shape[:-1]
        c = cond.reshape(-1, self.cond_dim)
        x_T = torch.zeros(c.shape[0], self.target_dim, device=cond.device)
        return self._denoise(x_T, c, self.sample_steps, 0.0).reshape(*lead, self.target_dim)

    @torch.no_grad()
    def sample_quality(
        self, cond: torch.Tensor, target: torch.Tensor, n: int = 1, steps: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Token MSE and mean cosine similarity of n samples to the targets (costly: full sampling)."""
        draws = self.sample(cond, n, steps)
        target = target.float().unsqueeze(0)
        return {
            "token_mse": F.mse_loss(draws, target.expand_as(draws)),
            "token_cosine": F.cosine_similarity(draws, target, dim=-1).mean(),
        }
