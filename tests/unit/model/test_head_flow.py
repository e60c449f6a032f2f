import math

import pytest
import torch

from vjepa.model.heads.flow import FlowHead


def perturb(head: FlowHead, scale: float = 0.15) -> FlowHead:
    """Move every parameter (zero-initialised output layers and ActNorm included) off its init."""
    with torch.no_grad():
        for p in head.parameters():
            p.add_(scale * torch.randn_like(p))
    return head


def std_normal_logpdf(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x.pow(2).sum(-1) + x.shape[-1] * math.log(2 * math.pi))


def test_fresh_flow_is_the_standard_normal():
    torch.manual_seed(0)
    head = FlowHead(4, 6, hidden_dim=16).eval()  # eval: ActNorm stays the identity
    cond, x = torch.randn(2, 3, 4), torch.randn(2, 3, 6)
    torch.testing.assert_close(head.log_prob(cond, x), std_normal_logpdf(x))
    assert torch.equal(head.point(cond), torch.zeros(2, 3, 6))
    s = head.sample(cond, 2000)
    assert s.mean().abs() < 0.03 and (s.std() - 1).abs() < 0.03


@pytest.mark.parametrize("dim", [6, 7])
def test_inverse_undoes_transform(dim):
    torch.manual_seed(1)
    head = perturb(FlowHead(5, dim, hidden_dim=32, num_layers=4)).eval()
    cond, x = torch.randn(3, 5, 5), torch.randn(3, 5, dim)
    z, logdet = head.transform(x, cond)
    assert z.shape == x.shape and logdet.shape == (3, 5)
    assert (z - x).abs().mean() > 0.3 and logdet.abs().mean() > 0.2  # the map is far from the identity
    torch.testing.assert_close(head.inverse(z, cond), x, atol=1e-4, rtol=0)
    torch.testing.assert_close(head.transform(head.point(cond), cond)[0], torch.zeros_like(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_logdet_is_log_abs_det_jacobian(dtype, tol):
    torch.manual_seed(2)
    head = perturb(FlowHead(3, 4, hidden_dim=16, num_layers=6)).to(dtype).eval()
    cond, x = torch.randn(1, 1, 3, dtype=dtype), torch.randn(1, 1, 4, dtype=dtype)
    jac = torch.autograd.functional.jacobian(lambda v: head.transform(v.view(1, 1, 4), cond)[0].view(4), x.view(4))
    sign, expected = torch.linalg.slogdet(jac)
    _, logdet = head.transform(x, cond)
    assert sign != 0 and expected.abs() > 0.2 and (jac - torch.eye(4, dtype=dtype)).abs().max() > 0.3
    torch.testing.assert_close(logdet.view(()), expected, atol=tol, rtol=0)
    z = head.transform(x, cond)[0]
    torch.testing.assert_close(head.log_prob(cond, x), std_normal_logpdf(z) + logdet)


@pytest.mark.slow
def test_fits_a_two_mode_gaussian_mixture():
    torch.manual_seed(3)
    means, std = torch.tensor([[-1.5, -1.5], [1.5, 1.5]]), 0.5

    def draw(n):
        return means[torch.randint(2, (n,))] + std * torch.randn(n, 2)

    def true_logpdf(x):
        comp = -0.5 * (x[:, None] - means).pow(2).sum(-1) / std**2 - math.log(2 * math.pi * std**2)
        return torch.logsumexp(comp, 1) - math.log(2)

    head = FlowHead(1, 2, hidden_dim=64)
    steps, batch = 300, 512
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        loss, _ = head.loss(torch.zeros(batch, 1, 1), draw(batch)[:, None])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    head.eval()
    with torch.no_grad():
        x = draw(4000)
        model, truth = head.log_prob(torch.zeros(4000, 1), x), true_logpdf(x)
        assert (model - truth).abs().mean() < 0.3
        assert truth.mean() - model.mean() < 0.15  # an estimate of KL(true ‖ model) ≥ 0
        # the density integrates to one over a box holding all the mass
        g = torch.linspace(-5, 5, 301)
        grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).view(-1, 2)
        mass = head.log_prob(torch.zeros(len(grid), 1), grid).exp().sum() * (g[1] - g[0]) ** 2
        assert abs(mass - 1) < 0.01
        # samples land on the two modes in equal shares
        s = head.sample(torch.zeros(1, 1), 4000).view(-1, 2)
        near = (s[:, None] - means).norm(dim=-1) < 3 * std
        assert near.any(1).float().mean() > 0.9
        assert 0.4 < near[:, 0].float().mean() / near.any(1).float().mean() < 0.6


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_scales_are_clamped(sign):
    torch.manual_seed(4)
    clamp, layers, dim = 0.5, 4, 6
    head = FlowHead(3, dim, hidden_dim=16, num_layers=layers, scale_clamp=clamp).eval()
    with torch.no_grad():
        for c in head.couplings:
            last = c.net[-1]
            half = last.out_features // 2  # rows [:half] give s_raw, the rest t
            last.weight[:half].normal_(0, 1e4)
            last.bias[:half] = sign * 1e6
            last.weight[half:].normal_(0, 0.1)
    cond, x = torch.randn(2, 5, 3), torch.randn(2, 5, dim)
    z, logdet = head.transform(x, cond)
    loss, diag = head.loss(cond, x)
    assert torch.isfinite(z).all() and torch.isfinite(logdet).all() and torch.isfinite(loss)
    assert diag["scale_abs_max"] <= clamp
    # every s sits at ±clamp, so each coupling adds ±clamp per transformed dimension
    torch.testing.assert_close(logdet, torch.full((2, 5), sign * clamp * layers * dim / 2))
    back = head.inverse(z, cond)
    assert torch.isfinite(back).all() and torch.isfinite(head.sample(cond, 3)).all()


def test_actnorm_initialises_once_from_the_first_batch():
    torch.manual_seed(5)
    dim = 4
    head = FlowHead(3, dim, hidden_dim=16)
    shift, spread = torch.tensor([3.0, -1.0, 0.5, 10.0]), torch.tensor([0.1, 2.0, 5.0, 1.0])
    first = shift + spread * torch.randn(8, 16, dim)
    head.loss(torch.randn(8, 16, 3), first)
    out, _ = head.norms[0](first.view(-1, dim))
    torch.testing.assert_close(out.mean(0), torch.zeros(dim), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(dim), atol=1e-4, rtol=0)
    assert all(bool(n.initialized) for n in head.norms)

    state = {k: v.clone() for k, v in head.state_dict().items()}
    head.loss(torch.randn(4, 9, 3), 7 * torch.randn(4, 9, dim))  # different statistics: no re-init
    for k, v in head.state_dict().items():
        assert torch.equal(v, state[k]), k

    fresh = FlowHead(3, dim, hidden_dim=16)
    fresh.load_state_dict(state)
    assert all(bool(n.initialized) for n in fresh.norms)
    fresh.loss(torch.randn(4, 9, 3), 7 * torch.randn(4, 9, dim))
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_sample_gives_distinct_draws_per_token():
    torch.manual_seed(6)
    head = perturb(FlowHead(5, 3, hidden_dim=16)).eval()
    cond = torch.randn(2, 4, 5)
    s = head.sample(cond, 6)
    assert s.shape == (6, 2, 4, 3) and s.dtype == torch.float32
    gaps = (s[:, None] - s[None]).norm(dim=-1)  # n×n×B×T
    off_diag = ~torch.eye(6, dtype=torch.bool)
    assert gaps[off_diag].min() > 1e-3
    # each draw is the inverse of a standard normal z under its own token's cond
    z, _ = head.transform(s, cond)
    assert z.shape == s.shape and abs(z.std().item() - 1) < 0.3


def test_loss_and_diagnostics():
    torch.manual_seed(7)
    head = perturb(FlowHead(5, 8, hidden_dim=16)).eval()
    cond, x = torch.randn(2, 3, 5), torch.randn(2, 3, 8)
    loss, diag = head.loss(cond, x)
    assert set(diag) == {"nll", "nll_per_dim", "logdet", "scale_abs_max"}
    assert all(v.dim() == 0 and not v.requires_grad for v in diag.values())
    torch.testing.assert_close(loss, -head.log_prob(cond, x).mean() / x.shape[-1])
    torch.testing.assert_close(diag["nll_per_dim"], loss.detach())
    torch.testing.assert_close(diag["nll"], 8 * loss.detach())
    torch.testing.assert_close(diag["logdet"], head.transform(x, cond)[1].mean())
    assert 0 < diag["scale_abs_max"] <= 2.0


def test_low_precision_inputs_use_float32_math():
    torch.manual_seed(8)
    head = perturb(FlowHead(5, 8, hidden_dim=16)).eval()
    cond, x = torch.randn(2, 3, 5).bfloat16(), torch.randn(2, 3, 8).bfloat16()
    reference = head.log_prob(cond.float(), x.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lp = head.log_prob(cond, x)
        s = head.sample(cond, 2)
    assert lp.dtype == torch.float32 and s.dtype == torch.float32
    torch.testing.assert_close(lp, reference)
