import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from vjepa.core.config import resolve
from vjepa.eval.head_metrics import head_metrics, held_out_batches, sample_quality
from vjepa.model.heads.mdn import inverse_soft_clamp
from vjepa.model.jepa import JEPA

from conftest import tiny

STATS = {"mean": [0.5] * 3, "std": [0.25] * 3}


@pytest.mark.slow
def test_exact_heads_report_the_mean_negative_log_likelihood_per_dimension(params):
    """An MDN head set to one known mixture for every token (weights 0.1, 0.2, 0.3, 0.15, 0.25, fixed
    means and σ, whatever the conditioning) reports as nll_per_dim the mean over the held-out tokens
    of -log p(target) / D, with p computed by torch.distributions."""
    params = tiny(params)
    params["heads"] = ["mdn"]
    cfg = resolve(params, "mdn")
    torch.manual_seed(0)
    model = JEPA(cfg).eval()
    head = model.head
    k, d = head.num_components, head.target_dim
    assert k == 5
    g = torch.Generator().manual_seed(3)
    weights = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25])
    means = 0.5 * torch.randn(k, d, generator=g)
    log_sigma = torch.empty(k, d).uniform_(-0.7, 0.3, generator=g)
    with torch.no_grad():
        for layer in (head.logits, head.means, head.log_sigma):
            layer.weight.zero_()
        head.logits.bias.copy_(weights.log() + 1.7)  # softmax drops the constant
        head.means.bias.copy_(means.flatten())
        head.log_sigma.bias.copy_(
            torch.tensor([inverse_soft_clamp(v, *head.log_sigma_bounds) for v in log_sigma.flatten().tolist()])
        )
    images = np.random.default_rng(0).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    m = head_metrics(model, images, STATS, cfg, max_images=40)
    ((_, target),) = list(held_out_batches(model, images, STATS, cfg, max_images=40))
    mixture = MixtureSameFamily(
        Categorical(probs=weights.double()), Independent(Normal(means.double(), log_sigma.double().exp()), 1)
    )
    expected = -mixture.log_prob(target.reshape(-1, 1, d).double()).mean().item() / d
    assert m["nll_per_dim"] == pytest.approx(expected, rel=1e-5)
    assert m["held_out_tokens"] == target.shape[0] * target.shape[1] > 40


def test_held_out_masks_are_reproducible(params):
    """The held-out masks come from their own generator: the same seed gives the same conditioning and
    targets in every batch whatever the global RNG's state, another seed other ones; head_metrics'
    point cosine follows the seed."""
    cfg = resolve(tiny(params), "deterministic")
    torch.manual_seed(0)
    model = JEPA(cfg).eval()
    images = np.random.default_rng(1).integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)

    def batches(seed, global_seed):
        torch.manual_seed(global_seed)
        return [t for pair in held_out_batches(model, images, STATS, cfg, seed=seed, batch_size=8) for t in pair]

    a, b, c = batches(0, 1), batches(0, 2), batches(1, 1)
    assert len(a) == len(b) == len(c) == 6  # (cond, target) of 3 batches: 8 + 8 + 4 images
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not any(torch.equal(x, y) for x, y in zip(a, c))
    first, again, other = (head_metrics(model, images, STATS, cfg, seed=s)["point_cosine"] for s in (0, 0, 1))
    assert first == again != other


def test_sample_quality_is_mse_and_cosine_of_one_draw():
    target = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # B=1, T=2, D=2
    draw = torch.tensor([[[[1.0, 0.0], [0.0, -2.0]]]])  # one draw: exact, then opposite
    q = sample_quality(draw, target)
    assert q["sample_mse"] == (0 + 0 + 0 + 16) / 4
    assert q["sample_cosine"] == 0.0  # mean of +1 and -1


def test_deterministic_head_samples_are_its_point_predictions(params):
    cfg = resolve(tiny(params), "deterministic")
    torch.manual_seed(0)
    model = JEPA(cfg).eval()
    images = np.random.default_rng(2).integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    m = head_metrics(model, images, STATS, cfg)
    assert abs(m["sample_cosine"] - m["point_cosine"]) < 1e-5


@pytest.mark.slow
def test_distribution_scores_for_a_point_mass_and_a_mixture(params):
    images = np.random.default_rng(2).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    out = {}
    for head in ("deterministic", "mdn"):
        p = tiny(params)
        cfg = resolve(p, head)
        torch.manual_seed(0)
        out[head] = head_metrics(JEPA(cfg).eval(), images, STATS, cfg, max_images=24)
    det, mdn = out["deterministic"], out["mdn"]
    # A point mass: no spread, intervals of width zero, one mode; its energy score is the mean distance.
    assert det["sample_pairwise_distance"] == 0.0 and det["modes"] == 1.0
    assert det["coverage_50"] == 0.0 and det["spread_error_spearman"] is None and det["energy_score"] > 0
    assert mdn["sample_pairwise_distance"] > 0 and 0.0 <= mdn["coverage_50"] <= mdn["coverage_90"] <= 1.0
    for m in (det, mdn):
        assert len(m["pit_histogram"]) == 10 and abs(sum(m["pit_histogram"]) - 1.0) < 1e-5
        assert m["draws_per_token"] == 64 and 0 < m["scored_tokens"] <= 256


@pytest.mark.slow
def test_diffusion_reports_its_variational_bound_in_place_of_the_nll(params):
    images = np.random.default_rng(3).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)
    p = tiny(params)
    p["eval"].update(draws=4, scored_tokens=16)
    cfg = resolve(p, "diffusion")
    torch.manual_seed(0)
    m = head_metrics(JEPA(cfg).eval(), images, STATS, cfg, max_images=16)
    assert m["nll_per_dim"] is None and "variational upper bound" in m["nll_note"]
    # The untrained denoiser predicts ε = 0: the bound is large but finite.
    assert np.isfinite(m["nll_bound_per_dim"]) and m["nll_bound_per_dim"] > 0
    assert m["draws_per_token"] == 4 and m["scored_tokens"] == 16
