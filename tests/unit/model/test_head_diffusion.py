import math

import pytest
import torch
import torch.nn as nn

from vjepa.model.heads.diffusion import DiffusionHead, ddim_sample, ddim_timesteps, linear_alpha_bar

ALPHA_BAR = linear_alpha_bar(1000, 1e-4, 0.02).float()


def gaussian_eps(alpha_bar: torch.Tensor, mu: torch.Tensor, s: float):
    """The exact ε-predictor E[ε | x_t] for data x0 ~ N(mu, s²I)."""

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = alpha_bar[t].unsqueeze(-1)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s**2 + 1 - a)

    return eps


def small_head(**settings) -> DiffusionHead:
    """A head whose output layer is not zero, so sampling does something non-trivial."""
    head = DiffusionHead(6, 4, hidden_dim=16, num_blocks=1, **settings)
    nn.init.normal_(head.net.out.weight, std=0.05)
    return head


def test_schedule_is_the_cumulative_product_of_linear_betas():
    T, b0, b1 = 1000, 1e-4, 0.02
    expected, prod = [], 1.0
    for s in range(T):
        prod *= 1 - (b0 + (b1 - b0) * s / (T - 1))
        expected.append(prod)
    torch.testing.assert_close(
        linear_alpha_bar(T, b0, b1), torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=0
    )
    head = DiffusionHead(4, 3)
    torch.testing.assert_close(head.alpha_bar, torch.tensor(expected, dtype=torch.float32))
    assert head.alpha_bar[0].item() == pytest.approx(1 - 1e-4)
    assert head.alpha_bar[-1].item() < 1e-4  # the last step is noise


def test_forward_noising_has_the_right_mean_and_variance():
    torch.manual_seed(0)
    head = DiffusionHead(4, 3)
    n, t = 20000, 300
    x0 = torch.tensor([2.0, -1.0, 0.5]).expand(n, 3)
    xt = head.q_sample(x0, torch.full((n,), t), torch.randn(n, 3))
    a = head.alpha_bar[t]
    torch.testing.assert_close(xt.mean(0), a.sqrt() * x0[0], atol=0.03, rtol=0)
    torch.testing.assert_close(xt.var(0), (1 - a).expand(3), atol=0.03, rtol=0)


def test_schedule_that_does_not_reach_noise_is_rejected():
    with pytest.raises(ValueError, match="scale beta_start"):
        DiffusionHead(4, 3, timesteps=100)  # ᾱ_T ≈ 0.37 with the 1000-step betas
    DiffusionHead(4, 3, timesteps=100, beta_start=1e-3, beta_end=0.2)


def test_ddim_timesteps_are_evenly_spaced_from_last_to_first():
    assert ddim_timesteps(1000, 50)[:3] == [999, 979, 958]
    for steps in (1, 25, 50, 1000):
        ts = ddim_timesteps(1000, steps)
        assert len(ts) == steps and ts[0] == 999 and (steps == 1 or ts[-1] == 0)
        assert all(a > b for a, b in zip(ts, ts[1:]))


def test_ddim_is_exactly_the_rotation_product_for_standard_normal_data():
    # For x0 ~ N(0, I), ε* = sqrt(1−ᾱ)·x_t and each η = 0 step multiplies x by cos(θ_t − θ_s),
    # with cos θ = sqrt(ᾱ) (θ = 0 after the last step).
    torch.manual_seed(0)
    x_T = torch.randn(7, 3)
    out = ddim_sample(gaussian_eps(ALPHA_BAR, torch.zeros(3), 1.0), x_T, ALPHA_BAR, 50)
    thetas = [math.acos(math.sqrt(ALPHA_BAR[t].item())) for t in ddim_timesteps(1000, 50)] + [0.0]
    factor = math.prod(math.cos(a - b) for a, b in zip(thetas, thetas[1:]))
    torch.testing.assert_close(out, factor * x_T, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("steps, eta, std_tol", [(50, 0.0, 0.05), (25, 0.0, 0.09), (50, 1.0, 0.09)])
def test_ddim_with_the_exact_eps_recovers_a_gaussian(steps, eta, std_tol):
    # The strided sampler itself is slightly under-dispersed even with the exact ε: for s = 0.5 the
    # closed-form output std is 0.472 (50 steps, η = 0), 0.444 (25 steps), 0.443 (50 steps, η = 1).
    torch.manual_seed(1)
    mu, s = torch.tensor([1.5, -0.5]), 0.5
    out = ddim_sample(gaussian_eps(ALPHA_BAR, mu, s), torch.randn(4000, 2), ALPHA_BAR, steps, eta)
    torch.testing.assert_close(out.mean(0), mu, atol=0.05, rtol=0)
    torch.testing.assert_close(out.std(0), torch.full((2,), s), atol=std_tol, rtol=0)


def test_ddim_from_zero_noise_lands_on_the_gaussian_mean():
    mu = torch.tensor([1.5, -0.5])
    out = ddim_sample(gaussian_eps(ALPHA_BAR, mu, 0.5), torch.zeros(1, 2), ALPHA_BAR, 50)
    torch.testing.assert_close(out[0], mu, atol=0.02, rtol=0)


def test_loss_is_eps_mse_and_starts_at_the_noise_energy():
    torch.manual_seed(0)
    B, T, C, D, k = 4, 50, 6, 16, 4
    head = DiffusionHead(C, D, hidden_dim=32, num_blocks=2, noise_draws=k)
    cond, target = torch.randn(B, T, C), torch.randn(B, T, D)
    torch.manual_seed(123)
    loss, diag = head.loss(cond, target)
    # Zero-initialised output: ε̂ = 0, so the loss is the mean square of the drawn noise (t, then ε).
    torch.manual_seed(123)
    torch.randint(0, head.timesteps, (k * B * T,))
    eps = torch.randn(k * B * T, D)
    torch.testing.assert_close(loss, eps.pow(2).mean())
    assert abs(loss.item() - 1.0) < 0.06
    assert set(diag) == {"eps_mse"} and diag["eps_mse"].dim() == 0 and not diag["eps_mse"].requires_grad
    torch.testing.assert_close(diag["eps_mse"], loss.detach())


@pytest.mark.parametrize("B, T, k", [(1, 1, 1), (3, 7, 3), (2, 5, 4)])
def test_noise_draws_work_with_any_token_count(B, T, k):
    torch.manual_seed(0)
    head = DiffusionHead(6, 4, hidden_dim=16, num_blocks=1, noise_draws=k)
    loss, _ = head.loss(torch.randn(B, T, 6), torch.randn(B, T, 4))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert head.net.out.weight.grad.abs().sum() > 0


def test_loss_accepts_bf16_inputs():
    torch.manual_seed(0)
    head = DiffusionHead(6, 4, hidden_dim=16, num_blocks=1)
    loss, _ = head.loss(torch.randn(2, 3, 6).bfloat16(), torch.randn(2, 3, 4).bfloat16())
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_sample_gives_n_distinct_draws_and_point_is_deterministic():
    torch.manual_seed(0)
    head = small_head()
    cond = torch.randn(2, 3, 6)
    draws = head.sample(cond, 5)
    assert draws.shape == (5, 2, 3, 4) and torch.isfinite(draws).all()
    gaps = (draws.unsqueeze(0) - draws.unsqueeze(1)).norm(dim=-1)  # 5×5×B×T
    assert (gaps + torch.eye(5)[:, :, None, None]).min() > 1e-3

    state = torch.get_rng_state()
    p1 = head.point(cond)
    assert torch.equal(torch.get_rng_state(), state)  # point draws nothing
    torch.randn(10)
    assert p1.shape == (2, 3, 4) and torch.equal(p1, head.point(cond))


def test_sample_fast_uses_the_fast_step_count_and_eta_adds_noise():
    torch.manual_seed(0)
    head = small_head(sample_steps=50, fast_sample_steps=10)
    cond = torch.randn(2, 3, 6)
    torch.manual_seed(5)
    fast = head.sample_fast(cond, 2)
    torch.manual_seed(5)
    assert torch.equal(fast, head.sample(cond, 2, steps=10))
    torch.manual_seed(5)
    assert not torch.allclose(fast, head.sample(cond, 2))

    # η = 0: same initial noise → same draws; η = 1: fresh noise on the way down.
    noisy = small_head(eta=1.0)
    noisy.load_state_dict(head.state_dict())
    torch.manual_seed(5)
    a = noisy.sample(cond, 2, steps=10)
    assert not torch.allclose(a, fast) and torch.isfinite(a).all()


def test_sample_quality_known_answers():
    torch.manual_seed(0)
    head = small_head()
    cond = torch.randn(2, 3, 6)
    torch.manual_seed(7)
    draw = head.sample(cond, 1)[0]
    torch.manual_seed(7)
    same = head.sample_quality(cond, draw)
    torch.manual_seed(7)
    flipped = head.sample_quality(cond, -draw)
    assert set(same) == {"token_mse", "token_cosine"} and all(v.dim() == 0 for v in same.values())
    assert same["token_mse"].item() == pytest.approx(0.0, abs=1e-6)
    assert same["token_cosine"].item() == pytest.approx(1.0, abs=1e-5)
    assert flipped["token_mse"].item() == pytest.approx(4 * draw.pow(2).mean().item(), rel=1e-5)
    assert flipped["token_cosine"].item() == pytest.approx(-1.0, abs=1e-5)


def test_no_exact_density():
    head = DiffusionHead(4, 3)
    assert head.exact_log_prob is False
    with pytest.raises(NotImplementedError):
        head.log_prob(torch.zeros(1, 1, 4), torch.zeros(1, 1, 3))


@pytest.mark.slow
def test_short_fit_reproduces_a_correlated_2d_gaussian():
    torch.manual_seed(0)
    mean = torch.tensor([1.0, -1.0])
    cov = torch.tensor([[0.5, 0.3], [0.3, 0.5]])
    chol = torch.linalg.cholesky(cov)
    T, steps, batch = 100, 200, 128
    head = DiffusionHead(4, 2, timesteps=T, beta_start=1e-3, beta_end=0.2, hidden_dim=64, num_blocks=2, sample_steps=50)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    cond = torch.ones(1, batch, 4)
    for _ in range(steps):
        x = mean + torch.randn(batch, 2) @ chol.T
        loss, _ = head.loss(cond, x.unsqueeze(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    draws = head.sample(torch.ones(1, 1, 4), 2000).reshape(-1, 2)
    torch.testing.assert_close(draws.mean(0), mean, atol=0.2, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), cov, atol=0.2, rtol=0)
    torch.testing.assert_close(head.point(torch.ones(1, 1, 4))[0, 0], mean, atol=0.25, rtol=0)


def test_x0_clip_bounds_the_estimate_and_is_a_no_op_when_loose():
    torch.manual_seed(3)
    abar = linear_alpha_bar(100, 1e-3, 0.2)
    wild = lambda x, t: 50.0 * torch.ones_like(x)  # a bad denoiser: x̂0 far outside the data
    x = torch.randn(64, 3)
    unclipped = ddim_sample(wild, x, abar, 10)
    clipped = ddim_sample(wild, x, abar, 10, x0_clip=2.0)
    assert unclipped.abs().max() > 100 and clipped.abs().max() <= 2.0 + 1e-5
    sane = lambda x, t: torch.zeros_like(x)
    torch.testing.assert_close(ddim_sample(sane, x, abar, 10, x0_clip=1e6), ddim_sample(sane, x, abar, 10))


class ExactEps(nn.Module):
    """The denoiser E[ε | x_t] for x0 ~ N(0, s²I), in the head's net(x, t, cond) signature."""

    def __init__(self, alpha_bar: torch.Tensor, s: float):
        super().__init__()
        self.eps, self.alpha_bar, self.s = gaussian_eps(alpha_bar, torch.zeros(()), s), alpha_bar, s

    def forward(self, x, t, cond):
        return self.eps(x, t)


def test_variational_bound_known_answer_for_gaussian_data():
    """With the exact denoiser for N(0, s²I) data, E|ε − ε̂|² = D·ᾱs²/(ᾱs² + 1 − ᾱ) per timestep,
    so the bound's expectation has a closed form; the one-draw estimate must match it, and it
    must lie above the exact NLL (a bound) and far below a denoiser that knows nothing."""
    torch.manual_seed(0)
    d, n, s = 8, 4000, 0.7
    head = DiffusionHead(4, d, hidden_dim=16, num_blocks=1)
    head.net = ExactEps(head.alpha_bar, s)
    x0, cond = torch.randn(n, d) * s, torch.zeros(n, 4)
    bound = head.nll_bound(cond, x0).double()

    abar = head.alpha_bar.double()
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    beta = 1 - abar / abar_prev
    beta_tilde = (1 - abar_prev) / (1 - abar) * beta
    weight = torch.cat(
        [1 / (2 * (1 - beta[:1])), beta[1:] ** 2 / (2 * beta_tilde[1:] * (1 - beta[1:]) * (1 - abar[1:]))]
    )
    err = abar * s**2 / (abar * s**2 + 1 - abar)
    a_T = abar[-1]
    expected = (
        0.5 * d * (a_T * s**2 - a_T - torch.log(1 - a_T))
        + 0.5 * d * torch.log(2 * math.pi * beta[0])
        + d * (weight * err).sum()
    )
    assert abs(bound.mean() - expected) < 4 * bound.std() / math.sqrt(n)
    exact = -torch.distributions.Normal(0.0, s).log_prob(x0.double()).sum(-1)
    assert bound.mean() > exact.mean()  # an upper bound on the NLL
    assert (bound.mean() - exact.mean()) / d < 1.0

    class Zero(nn.Module):
        def forward(self, x, t, cond):
            return torch.zeros_like(x)

    head.net = Zero()
    assert head.nll_bound(cond, x0).mean() / d > bound.mean() / d + 3.0
