"""The cross-view objective's pieces on constructed inputs: invariance, VICReg's terms, SIGReg and
the Epps-Pulley statistic (known answers), standardised projections, and the projector's scale."""

import math

import pytest
import torch
import torch.nn.functional as F

from vjepa.core.config import TrunkConfig
from vjepa.model.regularizers import covariance_penalty, epps_pulley, invariance, sigreg, variance_hinge
from vjepa.model.trunk import CrossViewObjective, projector

GAUSS_EP = math.sqrt(2 * math.pi) * (1 - 1 / math.sqrt(3))  # E[Epps-Pulley] of N(0, 1) samples
POINT_EP = math.sqrt(2 * math.pi) * (1 - 2 / math.sqrt(2) + 1 / math.sqrt(3))  # per sample, all at one point


def trunk(**kw) -> TrunkConfig:
    base = dict(
        global_views=2,
        local_views=0,
        local_size=8,
        local_crop_scale=(0.1, 0.3),
        projector_dim=0,
        standardize=False,
        invariance_weight=0.0,
        variance_weight=0.0,
        covariance_weight=0.0,
        sigreg_weight=0.0,
        sigreg_projections=64,
        predict_weight=1.0,
        predict_share=None,
        target_view="own",
        target_layers=1,
        target_norm="layer",
    )
    return TrunkConfig(**{**base, **kw})


def test_invariance_of_two_views_is_their_mse_and_zero_for_equal_views():
    v = torch.randn(2, 16, 5)
    assert invariance(v, 2).item() == pytest.approx(F.mse_loss(v[0], v[1]).item())
    assert invariance(v[:1].expand(3, -1, -1), 3).item() == 0.0


def test_invariance_pairs_every_view_with_every_other_global_view_once():
    v = torch.randn(4, 8, 3)  # 2 global + 2 local views
    pairs = [(0, 1), (2, 0), (3, 0), (2, 1), (3, 1)]  # locals meet globals only; no local-local pair
    expected = torch.stack([F.mse_loss(v[a], v[b]) for a, b in pairs]).mean()
    assert invariance(v, 2).item() == pytest.approx(expected.item(), rel=1e-6)


def test_epps_pulley_known_answers():
    torch.manual_seed(0)
    gauss = epps_pulley(torch.randn(400, 3000)).mean().item()
    assert gauss == pytest.approx(GAUSS_EP, rel=0.03)  # whatever N
    assert epps_pulley(torch.randn(50, 3000)).mean().item() == pytest.approx(GAUSS_EP, rel=0.05)
    point = epps_pulley(torch.zeros(300, 2))
    torch.testing.assert_close(point, torch.full((2,), 300 * POINT_EP), rtol=1e-3, atol=0)


def test_sigreg_is_near_its_gaussian_floor_for_isotropic_samples_and_large_otherwise():
    torch.manual_seed(1)
    x = torch.randn(512, 32)
    g = torch.Generator().manual_seed(0)
    assert sigreg(x, 256, g).item() == pytest.approx(GAUSS_EP, rel=0.1)
    collapsed = torch.randn(512, 1) @ torch.ones(1, 32) / math.sqrt(32) * 0.01  # every direction ~ a point
    assert sigreg(collapsed, 256, g).item() > 100
    assert sigreg(x * 3, 256, g).item() > 20  # too wide
    assert sigreg(x + 2, 256, g).item() > 20  # off-centre
    # Directions come from the generator: the same seed, the same value.
    a = sigreg(x, 16, torch.Generator().manual_seed(5))
    assert a.item() == sigreg(x, 16, torch.Generator().manual_seed(5)).item()


def test_vicreg_terms_on_constructed_inputs():
    wide = torch.tensor([[2.0, -2.0], [-2.0, 2.0], [2.0, 2.0], [-2.0, -2.0]])  # std > 1, uncorrelated
    assert variance_hinge(wide).item() == 0.0
    assert covariance_penalty(wide).item() == pytest.approx(0.0, abs=1e-7)
    constant = torch.ones(8, 4)
    assert variance_hinge(constant).item() == pytest.approx(1 - 1e-2, abs=1e-6)  # 1 - sqrt(eps)
    same = torch.randn(64, 1).expand(64, 3)  # three copies of one dimension
    var = same[:, 0].var().item()
    assert covariance_penalty(same).item() == pytest.approx(6 * var**2 / 3, rel=1e-4)


def test_objective_weights_its_terms_and_reports_each():
    torch.manual_seed(0)
    pooled = torch.randn(2, 32, 6)
    obj = CrossViewObjective(
        trunk(invariance_weight=2.0, variance_weight=0.5, covariance_weight=0.1, sigreg_weight=0.3), 6
    )
    torch.manual_seed(3)
    loss, d = obj(pooled)
    assert set(d) == {"trunk_inv", "trunk_var", "trunk_cov", "trunk_sigreg"}
    expected = 2.0 * d["trunk_inv"] + 0.5 * d["trunk_var"] + 0.1 * d["trunk_cov"] + 0.3 * d["trunk_sigreg"]
    torch.testing.assert_close(loss, expected)
    assert d["trunk_inv"].item() == pytest.approx(F.mse_loss(pooled[0], pooled[1]).item(), rel=1e-6)
    assert not trunk().cross_view_on and trunk(sigreg_weight=0.1).cross_view_on


def test_standardised_projections_cannot_shrink_their_way_out():
    """With `standardize`, scaling every view's features down leaves the invariance unchanged (it is
    2(1 - correlation) per dimension); without it, shrinking lowers it."""
    torch.manual_seed(0)
    a = torch.randn(64, 4)
    views = torch.stack([a, a + 0.5 * torch.randn(64, 4)])
    std = CrossViewObjective(trunk(standardize=True, invariance_weight=1.0, variance_weight=1.0), 4)
    raw = CrossViewObjective(trunk(invariance_weight=1.0), 4)
    for_std = std(views)[1]
    assert std(views * 0.05)[1]["trunk_inv"].item() == pytest.approx(for_std["trunk_inv"].item(), rel=1e-3)
    assert for_std["trunk_var"].item() < 1e-3  # unit std per dimension
    assert raw(views * 0.01)[1]["trunk_inv"].item() < 1e-3 * raw(views)[1]["trunk_inv"].item()
    z = (views - views.mean(1, keepdim=True)) / views.std(1, unbiased=True, keepdim=True)
    corr = (z[0] * z[1]).sum(0) / 63
    assert for_std["trunk_inv"].item() == pytest.approx((2 * (1 - corr)).mean().item() * 63 / 64, rel=2e-3)


def test_projector_starts_near_unit_scale():
    torch.manual_seed(0)
    p = projector(64, 256)
    x = torch.randn(512, 64) * 0.1  # small pooled features, as a young encoder gives
    ours = p(x).std(0).mean().item()
    default = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 256))(x)
    assert 0.4 < ours < 1.4 and ours > 5 * default.std(0).mean().item()


def test_batch_statistics_with_one_image_per_view_is_a_clear_error():
    objective = CrossViewObjective(trunk(standardize=True, invariance_weight=1.0), 8)
    with pytest.raises(ValueError, match="at least 2 images per view"):
        objective(torch.randn(2, 1, 8))
    loss, _ = objective(torch.randn(2, 3, 8))
    assert torch.isfinite(loss)
