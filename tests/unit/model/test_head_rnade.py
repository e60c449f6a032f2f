import math

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import Categorical, MixtureSameFamily, Normal

from vjepa.model.heads.rnade import RNADEHead


def randomized(head: RNADEHead, std: float = 0.3) -> RNADEHead:
    """Random non-zero weights everywhere (FiLM and skip included), non-trivial ActNorm."""
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0.0, std)
        d = head.target_dim
        head.actnorm.shift.copy_(torch.linspace(-0.5, 0.7, d))
        head.actnorm.log_scale.copy_(torch.linspace(0.3, -0.2, d))
    return head


def test_output_for_dimension_i_depends_only_on_earlier_dimensions():
    torch.manual_seed(0)
    d = 5
    head = randomized(RNADEHead(3, d, hidden_dim=16, num_layers=2, num_components=3))
    cond = torch.randn(1, 1, 3)

    def params(x):  # x: D → 3×D×K conditional parameters
        return torch.stack(head.mixture(cond, x.view(1, 1, d))).squeeze(1).squeeze(1)

    for _ in range(3):
        jac = jacobian(params, torch.randn(d))  # 3×D×K×D
        for i in range(d):
            block = jac[:, i]  # every parameter of dimension i's conditional
            assert torch.all(block[..., i:] == 0), f"dimension {i} sees dimensions >= itself"
            if i > 0:
                assert block[..., :i].abs().amax() > 1e-4, f"dimension {i} ignores all earlier dimensions"
    # The first dimension's conditional still depends on cond (through the output skip).
    x = torch.randn(1, 1, d)
    jac_c = jacobian(lambda c: torch.stack(head.mixture(c.view(1, 1, 3), x))[:, 0, 0, 0], cond.view(3))
    assert jac_c.abs().amax() > 1e-4


def test_density_integrates_to_one_with_actnorm():
    torch.manual_seed(1)
    head = randomized(
        RNADEHead(3, 2, hidden_dim=16, num_layers=2, num_components=3, min_log_sigma=-2.0, max_log_sigma=0.0)
    )
    assert head.actnorm.log_scale.abs().min() > 0.1  # the log-determinant is really exercised
    h = 0.02
    axis = torch.arange(-8.0, 8.0 + h / 2, h)
    grid = torch.cartesian_prod(axis, axis)  # G×2
    for _ in range(2):
        cond = torch.randn(3).expand(1, grid.shape[0], 3)
        with torch.no_grad():
            density = head.log_prob(cond, grid.unsqueeze(0)).double().exp()
        assert density.sum().item() * h * h == pytest.approx(1.0, abs=1e-2)  # observed error ≈ 1e-7


@pytest.mark.parametrize("d", [1, 3])
def test_log_prob_matches_torch_mixture_per_dimension(d):
    torch.manual_seed(2)
    head = randomized(RNADEHead(4, d, hidden_dim=8, num_layers=2, num_components=3)).eval()
    cond, x = torch.randn(2, 5, 4), torch.randn(2, 5, d)
    logits, means, log_sigma = head.mixture(cond, x)
    ref = MixtureSameFamily(Categorical(logits=logits), Normal(means, log_sigma.exp()))
    y = (x - head.actnorm.shift) * torch.exp(-head.actnorm.log_scale)
    expected = ref.log_prob(y).sum(-1) - head.actnorm.log_scale.sum()
    torch.testing.assert_close(head.log_prob(cond, x), expected, rtol=1e-5, atol=1e-5)
    # The loss is the mean NLL per token and dimension.
    torch.testing.assert_close(head.loss(cond, x)[0], -expected.mean() / d, rtol=1e-5, atol=1e-5)
    if d == 1:  # greedy conditional mean = exact mixture mean for the first dimension
        exact = ref.mean[..., 0] * head.actnorm.log_scale.exp() + head.actnorm.shift
        torch.testing.assert_close(head.point(cond)[..., 0], exact, rtol=1e-5, atol=1e-5)


def test_diagnostics_are_detached_scalars_with_known_values():
    torch.manual_seed(8)
    head = randomized(RNADEHead(4, 3, hidden_dim=8, num_components=3)).eval()
    cond, x = torch.randn(2, 5, 4), torch.randn(2, 5, 3)
    loss, diag = head.loss(cond, x)
    assert set(diag) == {"nll", "nll_per_dim", "effective_components", "sigma_mean"}
    assert all(v.dim() == 0 and not v.requires_grad for v in diag.values())
    torch.testing.assert_close(diag["nll_per_dim"], loss.detach())  # the loss is per dimension
    torch.testing.assert_close(diag["nll"], 3 * loss.detach())
    logits, _, log_sigma = head.mixture(cond, x)
    pi = logits.softmax(-1)
    torch.testing.assert_close(diag["effective_components"], (-(pi * pi.log()).sum(-1)).exp().mean())
    assert 1.0 <= diag["effective_components"] <= 3.0
    torch.testing.assert_close(diag["sigma_mean"], (log_sigma + head.actnorm.log_scale[:, None]).exp().mean())


def test_bf16_cond_computed_in_float32():
    torch.manual_seed(3)
    head = randomized(RNADEHead(4, 3, hidden_dim=8))
    cond, x = torch.randn(2, 5, 4).bfloat16(), torch.randn(2, 5, 3)
    out = head.log_prob(cond, x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, head.log_prob(cond.float(), x))


def _fit(head: RNADEHead, cond: torch.Tensor, x: torch.Tensor, steps: int, lr: float) -> None:
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    head.train()
    for _ in range(steps):
        loss, _ = head.loss(cond, x)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_fits_nonlinear_dependence_between_dimensions():
    torch.manual_seed(4)

    def data(n):
        x1 = torch.randn(n)
        return torch.stack([x1, x1.square() - 1 + 0.1 * torch.randn(n)], -1).unsqueeze(0)

    train, test = data(2000), data(2000)
    cond = torch.zeros(1, 2000, 2)
    head = RNADEHead(2, 2, hidden_dim=32, num_layers=2, num_components=3)
    _fit(head, cond, train, steps=150, lr=1e-2)
    head.eval()
    with torch.no_grad():
        nll = -head.log_prob(cond, test).mean().item()
    # Independent Gaussian fitted to the training data, scored on the test data.
    mu, sd = train[0].mean(0), train[0].std(0)
    gauss_nll = -Normal(mu, sd).log_prob(test[0]).sum(-1).mean().item()  # ≈ 3.18; the true NLL ≈ 0.54
    assert nll < gauss_nll - 2.0, (nll, gauss_nll)  # observed: ≈ 0.57 vs ≈ 3.2
    s = head.sample(cond, 1)[0, 0]
    corr = torch.corrcoef(torch.stack([s[:, 1], s[:, 0].square()]))[0, 1]
    assert corr > 0.9, corr  # observed ≈ 0.997


def test_uses_cond():
    torch.manual_seed(5)
    cond = torch.randn(1, 1000, 2)
    x = torch.stack([2 * cond[..., 0], cond[..., 0] - cond[..., 1]], -1) + 0.1 * torch.randn(1, 1000, 2)
    head = RNADEHead(2, 2, hidden_dim=16, num_layers=1, num_components=2)
    _fit(head, cond, x, steps=100, lr=1e-2)
    mean = torch.stack([2 * cond[..., 0], cond[..., 0] - cond[..., 1]], -1)
    assert (head.point(cond) - mean).abs().mean() < 0.1


def test_sample_shape_and_distinct_draws():
    torch.manual_seed(6)
    head = RNADEHead(4, 6, hidden_dim=8)
    cond = torch.randn(2, 3, 4)
    s = head.sample(cond, 5)
    assert s.shape == (5, 2, 3, 6) and s.dtype == torch.float32
    flat = s.reshape(5, -1, 6)
    for a in range(5):
        for b in range(a + 1, 5):
            assert (flat[a] - flat[b]).abs().amin(-1).min() > 0  # every token differs between draws
    assert head.point(cond).shape == (2, 3, 6)


def test_actnorm_initialises_once_and_survives_state_dict():
    torch.manual_seed(7)
    head = RNADEHead(2, 3, hidden_dim=4).train()
    cond = torch.zeros(1, 500, 2)
    first = torch.randn(1, 500, 3) * torch.tensor([1.0, 2.0, 0.5]) + torch.tensor([3.0, -1.0, 0.0])
    head.loss(cond, first)
    assert bool(head.actnorm.initialized)
    torch.testing.assert_close(head.actnorm.shift, first[0].mean(0))
    torch.testing.assert_close(head.actnorm.log_scale, first[0].std(0, unbiased=False).log())
    snapshot = (head.actnorm.shift.clone(), head.actnorm.log_scale.clone())
    head.loss(cond, 10 * torch.randn(1, 500, 3) - 5)  # a second batch does not re-initialise
    torch.testing.assert_close(head.actnorm.shift, snapshot[0])
    torch.testing.assert_close(head.actnorm.log_scale, snapshot[1])

    fresh = RNADEHead(2, 3, hidden_dim=4).train()
    fresh.load_state_dict(head.state_dict())
    assert bool(fresh.actnorm.initialized)
    fresh.loss(cond, torch.randn(1, 500, 3))
    torch.testing.assert_close(fresh.actnorm.shift, snapshot[0])
    torch.testing.assert_close(fresh.actnorm.log_scale, snapshot[1])
    # Loading an uninitialised state makes the next training batch initialise again.
    head.load_state_dict(RNADEHead(2, 3, hidden_dim=4).state_dict())
    head.loss(cond, first)
    torch.testing.assert_close(head.actnorm.shift, first[0].mean(0))
    # Evaluation mode never initialises.
    untouched = RNADEHead(2, 3, hidden_dim=4).eval()
    untouched.loss(cond, first)
    assert not bool(untouched.actnorm.initialized)


def test_rejects_too_narrow_hidden_layers():
    with pytest.raises(ValueError):
        RNADEHead(4, 64, hidden_dim=32)
    assert math.isfinite(RNADEHead(4, 64, hidden_dim=63).loss(torch.randn(1, 2, 4), torch.randn(1, 2, 64))[0].item())
