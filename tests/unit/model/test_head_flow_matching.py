import math

import pytest
import torch

from vjepa.model.heads.flow_matching import FlowMatchingHead, integrate


def gaussian_velocity(mu: torch.Tensor, sigma: float):
    """The exact straight-path velocity E[x1 - x0 | x_t = x] for x1 ~ N(mu, sigma² I), x0 ~ N(0, I)."""

    def v(x: torch.Tensor, t: float) -> torch.Tensor:
        r = (x - t * mu) / (t * t * sigma**2 + (1 - t) ** 2)
        return (mu + t * sigma**2 * r) - (1 - t) * r

    return v


def test_analytic_velocity_transports_noise_onto_the_gaussian_target():
    torch.manual_seed(0)
    mu, sigma = torch.tensor([1.0, -2.0, 0.5, 3.0]), 0.5
    x0 = torch.randn(20_000, 4)
    x = integrate(gaussian_velocity(mu, sigma), x0, steps=50, solver="heun")
    torch.testing.assert_close(x.mean(0), mu, atol=0.03, rtol=0)
    torch.testing.assert_close(x.std(0), torch.full((4,), sigma), atol=0.02, rtol=0)
    # the exact flow map at t = 1 is x0 ↦ sigma·x0 + mu
    assert (x - (sigma * x0 + mu)).abs().max() < 2e-3


def test_heun_is_second_order_and_beats_euler():
    torch.manual_seed(0)
    mu, sigma = torch.tensor([1.0, -2.0, 0.5, 3.0]), 0.5
    v = gaussian_velocity(mu, sigma)
    x0 = torch.randn(1000, 4)
    exact = sigma * x0 + mu

    def err(steps: int, solver: str) -> float:
        return (integrate(v, x0, steps, solver) - exact).abs().max().item()

    assert err(10, "heun") < err(10, "euler") / 10
    assert 1.6 < err(10, "euler") / err(20, "euler") < 2.4  # first order: halving h halves the error
    assert err(10, "heun") / err(20, "heun") > 3.0  # second order: ~4
    with pytest.raises(ValueError):
        integrate(v, x0, 10, "rk4")


def test_velocity_and_point_are_zero_at_init():
    torch.manual_seed(0)
    head = FlowMatchingHead(5, 3, hidden_dim=16, num_blocks=2)
    cond = torch.randn(2, 4, 5)
    torch.testing.assert_close(head.velocity(torch.randn(2, 4, 3), torch.rand(2, 4), cond), torch.zeros(2, 4, 3))
    torch.testing.assert_close(head.point(cond), torch.zeros(2, 4, 3))


@pytest.mark.parametrize("noise_draws", [1, 3])
def test_loss_is_mse_to_path_velocity_on_the_same_draws(noise_draws):
    # at init v ≡ 0, so the loss is mean ‖x1 - x0‖² / D over tokens and draws
    head = FlowMatchingHead(5, 8, hidden_dim=16, num_blocks=1, noise_draws=noise_draws)
    torch.manual_seed(1)
    cond, target = torch.randn(3, 7, 5), 2.0 + torch.randn(3, 7, 8)
    torch.manual_seed(2)
    loss, diag = head.loss(cond, target)
    torch.manual_seed(2)
    x1 = target.reshape(-1, 8).expand(noise_draws, -1, -1)
    x0 = torch.randn(noise_draws, 21, 8)  # independent noise for every draw of every token
    expected = (x1 - x0).pow(2).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(diag["fm_mse"], expected)
    assert diag["v_norm"] == 0 and not diag["fm_mse"].requires_grad and diag["fm_mse"].dim() == 0
    # and E‖x1 - x0‖²/D = E[x1²] + 1 ≈ 4 + 1 + 1
    big = FlowMatchingHead(5, 8, hidden_dim=16, num_blocks=1, noise_draws=noise_draws)
    loss_big, _ = big.loss(torch.randn(50, 40, 5), 2.0 + torch.randn(50, 40, 8))
    assert abs(loss_big.item() - 6.0) < 0.3


def test_loss_with_a_constant_velocity_and_diagnostics():
    head = FlowMatchingHead(2, 4, hidden_dim=8, num_blocks=1)
    with torch.no_grad():
        head.net.out.bias.fill_(0.5)  # v ≡ 0.5 in every coordinate
    torch.manual_seed(3)
    cond, target = torch.randn(2, 5, 2), torch.randn(2, 5, 4)
    torch.manual_seed(4)
    loss, diag = head.loss(cond, target)
    torch.manual_seed(4)
    x1 = target.reshape(-1, 4).expand(2, -1, -1)
    u = x1 - torch.randn(2, 10, 4)
    torch.testing.assert_close(loss, (0.5 - u).pow(2).mean())
    torch.testing.assert_close(diag["v_norm"], torch.tensor(0.5))  # ‖v‖ = 0.5·√D


def test_bf16_inputs_and_autocast_keep_float32_outputs_and_gradients():
    torch.manual_seed(0)
    head = FlowMatchingHead(6, 4, hidden_dim=16, num_blocks=2, sample_steps=3)
    cond = torch.randn(2, 3, 6, requires_grad=True)
    loss, _ = head.loss(cond.bfloat16(), torch.randn(2, 3, 4).bfloat16())
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert head.net.out.weight.grad.abs().sum() > 0  # zero-init layers still receive gradient
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, diag = head.loss(cond.bfloat16(), torch.randn(2, 3, 4))
        draws, point = head.sample(cond.bfloat16(), 2), head.point(cond.bfloat16())
    assert loss.dtype == diag["v_norm"].dtype == draws.dtype == point.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(draws).all()


def test_sample_gives_distinct_draws_and_point_is_deterministic():
    torch.manual_seed(0)
    head = FlowMatchingHead(6, 4, hidden_dim=16, num_blocks=2, sample_steps=5)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.3)  # a non-trivial field
    cond = torch.randn(2, 3, 6)
    draws = head.sample(cond, 7)
    assert draws.shape == (7, 2, 3, 4) and not draws.requires_grad
    assert torch.cdist(draws[:, 0, 0], draws[:, 0, 0]).add(torch.eye(7)).min() > 1e-3
    assert head.sample(cond, 2, steps=3, solver="euler").shape == (2, 2, 3, 4)
    p = head.point(cond)
    assert p.shape == (2, 3, 4)
    torch.testing.assert_close(head.point(cond), p, rtol=0, atol=0)
    # point is the image of x0 = 0; a token's result does not depend on the other tokens
    torch.testing.assert_close(head.point(cond[1:, 2:]), p[1:, 2:])
    assert not torch.allclose(head.point(cond, steps=2), p)


MEAN_A, COV_A = torch.tensor([1.0, -2.0]), torch.tensor([[1.0, 0.8], [0.8, 1.0]])
MEAN_B, COV_B = torch.tensor([-1.0, 1.0]), torch.tensor([[0.25, 0.0], [0.0, 1.44]])


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_recovers_two_conditional_gaussians(seed):
    """One head, two cond vectors, two targets: a correlated and an anisotropic Gaussian."""
    torch.manual_seed(seed)
    head = FlowMatchingHead(3, 2, hidden_dim=64, num_blocks=2, noise_draws=1, sample_steps=20)
    cond = torch.tensor([[0.5, -1.0, 2.0], [-1.0, 0.3, 0.0]])
    chol = torch.linalg.cholesky(torch.stack([COV_A, COV_B]))
    mean = torch.stack([MEAN_A, MEAN_B])
    steps, batch = 300, 128
    opt = torch.optim.Adam(head.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    first = None
    for _ in range(steps):
        x1 = mean[:, None] + torch.einsum("kij,knj->kni", chol, torch.randn(2, batch, 2))
        loss, diag = head.loss(cond[:, None].expand(2, batch, 3), x1)
        first = diag["fm_mse"] if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    assert diag["fm_mse"] < first
    draws = head.sample(cond[None], 2000)  # 2000×1×2×2
    point = head.point(cond[None])[0]
    for k, (m, c) in enumerate([(MEAN_A, COV_A), (MEAN_B, COV_B)]):
        s = draws[:, 0, k]
        torch.testing.assert_close(s.mean(0), m, atol=0.15, rtol=0)
        torch.testing.assert_close(torch.cov(s.T), c, atol=0.2, rtol=0)
        torch.testing.assert_close(point[k], m, atol=0.15, rtol=0)  # Gaussian: 0 ↦ mean
    # worst over 48 seeds: mean 0.12, covariance entries 0.15, point 0.08
