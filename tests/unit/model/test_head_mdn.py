import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vjepa.model.heads.mdn import MDNHead

LOW, HIGH = -5.0, 2.0


def mixture_distribution(logits, means, log_sigma):
    return MixtureSameFamily(Categorical(logits=logits), Independent(Normal(means, log_sigma.exp()), 1))


def fit(head: MDNHead, cond: torch.Tensor, draw, steps: int = 300, lr: float = 3e-2) -> None:
    """Adam on the head's loss; `draw()` returns a fresh target batch shaped like cond[..., :D]."""
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        loss, _ = head.loss(cond, draw())
        opt.zero_grad()
        loss.backward()
        opt.step()


def random_head(**settings) -> MDNHead:
    """A head with random, large-ish weights so the σ clamp is active on some outputs."""
    head = MDNHead(6, 3, num_components=4, min_log_sigma=LOW, max_log_sigma=HIGH, **settings)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0.0, 1.5)
    return head


def test_mixture_applies_the_soft_clamp_to_the_linear_outputs():
    torch.manual_seed(0)
    head = random_head(hidden_dim=8)
    cond = torch.randn(2, 5, 6)
    logits, means, log_sigma = head.mixture(cond)
    assert logits.shape == (2, 5, 4) and means.shape == (2, 5, 4, 3) and log_sigma.shape == (2, 5, 4, 3)
    h = head.trunk(cond)
    raw = head.log_sigma(h).view(2, 5, 4, 3)
    centre, half = (HIGH + LOW) / 2, (HIGH - LOW) / 2
    torch.testing.assert_close(log_sigma, centre + half * torch.tanh((raw - centre) / half))
    torch.testing.assert_close(logits, head.logits(h))
    torch.testing.assert_close(means, head.means(h).view(2, 5, 4, 3))
    assert (raw < LOW).any() and (raw > HIGH).any(), "the test should exercise the clamp"
    assert (log_sigma >= LOW).all() and (log_sigma <= HIGH).all()


@pytest.mark.parametrize("hidden_dim", [0, 8])
def test_log_prob_matches_torch_mixture_same_family(hidden_dim):
    torch.manual_seed(1)
    head = random_head(hidden_dim=hidden_dim)
    cond = torch.randn(2, 5, 6)
    target = 2 * torch.randn(2, 5, 3)
    with torch.no_grad():
        expected = mixture_distribution(*head.mixture(cond)).log_prob(target)
        got = head.log_prob(cond, target)
    assert got.shape == (2, 5)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_log_prob_of_a_single_standard_component_is_the_standard_normal_density():
    head = MDNHead(4, 2, num_components=1)
    cond = torch.randn(1, 3, 4)
    target = torch.tensor([[[0.0, 0.0], [1.0, -2.0], [3.0, 0.5]]])
    with torch.no_grad():
        head.means.weight.zero_()
        head.means.bias.zero_()
    expected = -0.5 * target.square().sum(-1) - math.log(2 * math.pi)
    torch.testing.assert_close(head.log_prob(cond, target), expected, rtol=0, atol=1e-5)


def test_loss_is_mean_nll_per_dimension_plus_weighted_log_variance_penalty():
    torch.manual_seed(2)
    head = random_head(sigma_reg=0.01)
    cond, target = torch.randn(3, 4, 6), torch.randn(3, 4, 3)
    loss, diag = head.loss(cond, target)
    nll = -head.log_prob(cond, target).mean()
    _, _, log_sigma = head.mixture(cond)
    penalty = (2 * log_sigma).square().mean()
    torch.testing.assert_close(loss, nll / 3 + 0.01 * penalty)
    torch.testing.assert_close(diag["nll"], nll.detach())
    torch.testing.assert_close(diag["nll_per_dim"], nll.detach() / 3)
    torch.testing.assert_close(diag["log_sigma_reg"], penalty.detach())
    torch.testing.assert_close(diag["sigma_mean"], log_sigma.exp().mean().detach())
    for value in diag.values():
        assert value.dim() == 0 and not value.requires_grad

    unregularised = random_head(sigma_reg=0.0)
    loss, diag = unregularised.loss(cond, target)
    torch.testing.assert_close(loss, -unregularised.log_prob(cond, target).mean() / 3)
    assert "log_sigma_reg" not in diag


def test_entropy_diagnostics_known_answers():
    torch.manual_seed(3)
    head = MDNHead(4, 2, num_components=5)
    cond, target = torch.randn(2, 3, 4), torch.randn(2, 3, 2)
    with torch.no_grad():
        head.logits.weight.zero_()
        head.logits.bias.zero_()
    _, diag = head.loss(cond, target)
    torch.testing.assert_close(diag["mixture_entropy"], torch.tensor(math.log(5)))
    torch.testing.assert_close(diag["effective_components"], torch.tensor(5.0))
    with torch.no_grad():
        head.logits.bias.copy_(torch.tensor([100.0, 0, 0, 0, 0]))
    _, diag = head.loss(cond, target)
    assert diag["mixture_entropy"].abs() < 1e-6
    torch.testing.assert_close(diag["effective_components"], torch.tensor(1.0))


def test_initialisation_has_unit_sigma_equal_weights_and_spread_means():
    torch.manual_seed(4)
    head = MDNHead(32, 64)
    cond = torch.randn(4, 10, 32)
    logits, means, log_sigma = head.mixture(cond)
    torch.testing.assert_close(log_sigma, torch.zeros_like(log_sigma), rtol=0, atol=1e-6)
    pi = logits.softmax(-1)
    assert (pi - 0.2).abs().max() < 0.1
    gaps = torch.cdist(means[0, 0], means[0, 0])[~torch.eye(5, dtype=torch.bool)]
    assert gaps.min() > 5.0  # ~sqrt(2·64) for unit-variance random means


def test_fits_a_bimodal_target_and_samples_both_modes():
    torch.manual_seed(0)
    head = MDNHead(4, 2, num_components=5)
    c = torch.randn(4)
    modes = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])

    def draw():
        side = torch.randint(0, 2, (8, 32))
        return modes[side] + 0.3 * torch.randn(8, 32, 2)

    fit(head, c.expand(8, 32, 4), draw)
    with torch.no_grad():
        logits, means, log_sigma = (x[0, 0] for x in head.mixture(c.view(1, 1, 4)))
        pi, sigma = logits.softmax(-1), log_sigma.exp()
        near = torch.cdist(modes, means) < 0.3  # mode × component
        mass = (near * pi).sum(-1)
        assert (mass > 0.35).all(), f"weight near each mode: {mass}"
        assert mass.sum() > 0.95
        for m in range(2):
            sigma_m = (pi[near[m], None] * sigma[near[m]]).sum(0) / mass[m]
            assert ((sigma_m > 0.2) & (sigma_m < 0.42)).all(), f"σ near mode {m}: {sigma_m}"

        x = head.sample(c.view(1, 1, 4), 4000)[:, 0, 0]
        left = (x[:, 0] < 0).float().mean()
        assert abs(left - 0.5) < 0.1
        dist = torch.cdist(x, modes).min(-1).values
        assert (dist < 1.0).float().mean() > 0.95
        assert head.point(c.view(1, 1, 4)).abs().max() < 0.5  # the mixture mean sits between the modes


def test_conditioning_separates_two_unimodal_targets():
    torch.manual_seed(1)
    head = MDNHead(2, 2, num_components=5)
    conds = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    centres = torch.tensor([[1.5, -1.0], [-1.0, 2.0]])
    which = torch.arange(64) % 2
    cond = conds[which].view(4, 16, 2)

    def draw():
        return centres[which].view(4, 16, 2) + 0.2 * torch.randn(4, 16, 2)

    fit(head, cond, draw)
    with torch.no_grad():
        pred = head.point(conds.view(2, 1, 2))[:, 0]
        torch.testing.assert_close(pred, centres, rtol=0, atol=0.15)
        spread = head.sample(conds.view(2, 1, 2), 2000)[:, :, 0].std(0)
        assert ((spread > 0.15) & (spread < 0.27)).all(), spread


def test_samples_are_distinct_draws_whose_moments_match_the_mixture():
    torch.manual_seed(5)
    head = MDNHead(6, 3, num_components=4)
    with torch.no_grad():
        head.logits.bias.normal_()
        head.log_sigma.bias.normal_(0.0, 0.5)
        cond = torch.randn(2, 3, 6)
        s = head.sample(cond, 20000)
        assert s.shape == (20000, 2, 3, 3)
        assert torch.isfinite(s).all()
        assert (s[0] != s[1]).all() and (s[:, 0, 0] != s[:, 0, 1]).all()
        logits, means, log_sigma = head.mixture(cond)
        pi = logits.softmax(-1).unsqueeze(-1)
        mean = head.point(cond)
        torch.testing.assert_close(mean, (pi * means).sum(-2))
        var = (pi * (log_sigma.exp().square() + means.square())).sum(-2) - mean.square()
        err = (s.mean(0) - mean).abs() / (var / 20000).sqrt()
        assert err.max() < 5.0, err.max()
        torch.testing.assert_close(s.var(0), var, rtol=0.06, atol=0.0)


def test_extreme_linear_outputs_stay_in_sigma_bounds_with_finite_loss_and_gradients():
    torch.manual_seed(6)
    cond, target = torch.randn(2, 4, 5), torch.randn(2, 4, 3)
    for bias in (100.0, -100.0):
        head = MDNHead(5, 3, num_components=3, min_log_sigma=LOW, max_log_sigma=HIGH)
        with torch.no_grad():
            head.log_sigma.bias.fill_(bias)
        _, _, log_sigma = head.mixture(cond)
        assert (log_sigma >= LOW).all() and (log_sigma <= HIGH).all()
        loss, diag = head.loss(cond, target)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(v) for v in diag.values())
        for p in head.parameters():
            assert torch.isfinite(p.grad).all()
        assert head.means.weight.grad.abs().sum() > 0


def test_bf16_autocast_inputs_are_evaluated_in_float32():
    torch.manual_seed(7)
    head = MDNHead(8, 4)
    cond = torch.randn(2, 3, 8).bfloat16()
    target = torch.randn(2, 3, 4).bfloat16()
    reference, _ = head.loss(cond.float(), target.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, means, log_sigma = head.mixture(cond)
        loss, _ = head.loss(cond, target)
    assert logits.dtype == means.dtype == log_sigma.dtype == loss.dtype == torch.float32
    torch.testing.assert_close(loss, reference)


def test_histograms_and_variable_token_counts():
    torch.manual_seed(8)
    head = MDNHead(8, 4, num_components=3, hidden_dim=16)
    for t in (1, 7):
        cond = torch.randn(2, t, 8)
        loss, _ = head.loss(cond, torch.randn(2, t, 4))
        loss.backward()
        assert head.point(cond).shape == (2, t, 4)
        assert head.sample(cond, 3).shape == (3, 2, t, 4)
        hist = head.histograms(cond)
        assert hist["sigma"].shape == (2 * t * 3 * 4,) and (hist["sigma"] > 0).all()
        assert hist["mixture_weights"].shape == (2 * t * 3,)
        torch.testing.assert_close(hist["mixture_weights"].view(-1, 3).sum(-1), torch.ones(2 * t))
    with pytest.raises(ValueError):
        MDNHead(8, 4, min_log_sigma=0.5)
