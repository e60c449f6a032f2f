import pytest
import torch
import torch.nn.functional as F

from vjepa.core.config import resolve
from vjepa.model.heads import HEADS, build_head
from vjepa.model.heads.deterministic import DeterministicHead
from vjepa.model.jepa import JEPA, ema_at, lr_at, param_groups
from vjepa.model.masks import MultiBlockMaskSampler
from vjepa.model.regularizers import covariance_penalty, effective_rank, variance_hinge

from conftest import tiny


@pytest.fixture
def model_and_batch(params):
    cfg = resolve(tiny(params), "deterministic")
    torch.manual_seed(0)
    model = JEPA(cfg)
    rows = cfg.trunk.global_views * 2  # views x images, view-major
    x = torch.randn(rows, 3, 16, 16)
    masks = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)(rows, torch.Generator().manual_seed(0))
    return cfg, model, x, masks


def test_targets_are_layer_normed_teacher_tokens_at_target_positions(model_and_batch):
    cfg, model, x, masks = model_and_batch
    t = model.targets(x, masks.targets)
    b, m, nt = masks.targets.shape
    assert t.shape == (b, m * nt, cfg.model.embed_dim)
    torch.testing.assert_close(t.mean(-1), torch.zeros(b, m * nt), atol=1e-5, rtol=0)
    torch.testing.assert_close(t.var(-1, unbiased=False), torch.ones(b, m * nt), atol=1e-3, rtol=0)
    full = F.layer_norm(model.teacher(x), (cfg.model.embed_dim,))
    i = masks.targets[2, 1, 0]
    torch.testing.assert_close(t[2, nt], full[2, i])
    assert not t.requires_grad


def test_loss_backpropagates_to_student_and_predictor_not_teacher(model_and_batch):
    _, model, x, masks = model_and_batch
    loss, _, diag, _, cond = model(x, masks)
    loss.backward()
    assert {"align", "var", "cov"} <= set(diag)
    assert model.encoder.patch_embed.weight.grad.abs().sum() > 0
    assert model.predictor.mask_token.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_ema_update_moves_teacher_toward_student(model_and_batch):
    _, model, _, _ = model_and_batch
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.teacher.parameters()]
    model.update_teacher(0.9)
    for t0, t1, s in zip(before, model.teacher.parameters(), model.encoder.parameters()):
        torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * s)
    frozen = [p.clone() for p in model.teacher.parameters()]
    model.update_teacher(1.0)  # momentum 1 freezes the teacher
    for t1, t2 in zip(frozen, model.teacher.parameters()):
        assert torch.equal(t1, t2)


def test_cross_view_term_is_added_to_the_head_loss_with_views_paired(params):
    """The loss is the head's masked-token loss plus the trunk's cross-view term on the student's
    pooled context features, reshaped view-major (row v·B + i is view v of image i)."""
    params = tiny(params)
    params["trunk"].update(
        global_views=2,
        projector_dim=8,
        standardize=False,
        invariance_weight=1.0,
        variance_weight=0.5,
        covariance_weight=0.04,
        sigreg_weight=0.0,
    )
    cfg = resolve(params, "deterministic")
    torch.manual_seed(0)
    model = JEPA(cfg)
    masks = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)(6, torch.Generator().manual_seed(0))
    loss, _, diag, z, _ = model(torch.randn(6, 3, 16, 16), masks)
    assert {"trunk_inv", "trunk_var", "trunk_cov"} <= set(diag) and "trunk_sigreg" not in diag
    p = model.cross_view.projector(z.mean(1)).view(2, 3, -1)
    torch.testing.assert_close(diag["trunk_inv"], F.mse_loss(p[0], p[1]), atol=1e-6, rtol=1e-5)
    extra = diag["trunk_inv"] + 0.5 * diag["trunk_var"] + 0.04 * diag["trunk_cov"]
    torch.testing.assert_close(loss.detach(), diag["head_loss"] + extra, atol=1e-5, rtol=1e-5)


def test_paper_trunk_is_the_head_loss_alone(params):
    params = tiny(params)
    params["trunk"].update(
        global_views=1,
        projector_dim=0,
        invariance_weight=0.0,
        variance_weight=0.0,
        covariance_weight=0.0,
        sigreg_weight=0.0,
    )
    cfg = resolve(params, "deterministic")
    model = JEPA(cfg)
    masks = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)(4, torch.Generator().manual_seed(0))
    loss, _, diag, _, _ = model(torch.randn(4, 3, 16, 16), masks)
    assert not any(k.startswith("trunk_") for k in diag)
    assert loss.item() == diag["head_loss"].item()


def test_local_views_enter_the_cross_view_term(params):
    params = tiny(params)
    params["trunk"].update(global_views=2, local_views=2, local_size=8, invariance_weight=1.0)
    cfg = resolve(params, "deterministic")
    torch.manual_seed(0)
    model = JEPA(cfg)
    masks = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)(4, torch.Generator().manual_seed(0))
    x, local = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 8, 8)
    with_local = model(x, masks, local)[2]["trunk_inv"]
    without = model(x, masks)[2]["trunk_inv"]
    assert with_local.item() != pytest.approx(without.item())
    model(x, masks, local)[0].backward()
    assert model.encoder.patch_embed.weight.grad.abs().sum() > 0


def test_no_weight_decay_on_biases_norms_and_tokens(model_and_batch):
    _, model, _, _ = model_and_batch
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    ids = {id(p) for p in no_decay["params"]}
    assert id(model.predictor.mask_token) in ids
    assert id(model.encoder.norm.weight) in ids and id(model.encoder.blocks[0].attn.qkv.bias) in ids
    assert id(model.encoder.blocks[0].attn.qkv.weight) not in ids
    teacher = {id(p) for p in model.teacher.parameters()}
    assert not teacher & (ids | {id(p) for p in decay["params"]})


def test_schedules_known_values():
    assert lr_at(0, 100, 10, 1e-3, 1e-5) == pytest.approx(1e-4)
    assert lr_at(9, 100, 10, 1e-3, 1e-5) == pytest.approx(1e-3)
    assert lr_at(55, 100, 10, 1e-3, 1e-5) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert lr_at(100, 100, 10, 1e-3, 1e-5) == pytest.approx(1e-5)
    assert ema_at(0, 101, 0.998, 1.0) == pytest.approx(0.998)
    assert ema_at(50, 101, 0.998, 1.0) == pytest.approx(0.999)
    assert ema_at(100, 101, 0.998, 1.0) == pytest.approx(1.0)


def test_deterministic_head_loss_terms_known_answers():
    head = DeterministicHead(4, 3, align_weight=1.0, var_weight=0.1, cov_weight=0.01)
    cond = torch.randn(2, 5, 4)
    target = head.point(cond).detach() + 0.5
    loss, d = head.loss(cond, target)
    assert d["align"].item() == pytest.approx(0.25, abs=1e-6)
    flat = head.point(cond).reshape(-1, 3)
    assert d["var"].item() == pytest.approx(variance_hinge(flat).item())
    assert loss.item() == pytest.approx(0.25 + 0.1 * d["var"].item() + 0.01 * d["cov"].item(), rel=1e-5)
    s = head.sample(cond, 3)
    assert s.shape == (3, 2, 5, 3) and torch.equal(s[0], s[2])  # a point mass
    with pytest.raises(NotImplementedError, match="no exact log-density"):
        head.log_prob(cond, target)


def test_regularizers_known_answers():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    # std of dim 0 = sqrt(4/3) > 1 -> 0; dim 1 has std 0 -> hinge ~1; mean over dims ~0.5
    assert variance_hinge(x).item() == pytest.approx(0.5, abs=0.01)
    y = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [2.0, 2.0], [-2.0, -2.0]])
    c = (y.T @ y / 3)[0, 1]
    assert covariance_penalty(y).item() == pytest.approx(2 * c.item() ** 2 / 2)
    assert effective_rank(torch.randn(500, 1) @ torch.randn(1, 8)) == pytest.approx(1.0, abs=1e-3)
    # One-hot rows of 6 classes: centring leaves 5 equal singular values.
    assert effective_rank(torch.eye(6).repeat(20, 1)) == pytest.approx(5.0, rel=1e-4)


def test_registry_builds_every_head():
    for name in HEADS:
        head = build_head(name, 8, 12, {})
        assert head.point(torch.randn(2, 3, 8)).shape == (2, 3, 12)
    with pytest.raises(KeyError, match="unknown head"):
        build_head("nope", 8, 12, {})


def _theta(*rows):
    """view_theta of crop rows (cx, cy, w, h, sign), no rotation."""
    from vjepa.data.augment import view_theta

    return view_theta(torch.tensor([[*r, 0.0] for r in rows]))


def _normed(r, n, d):
    torch.manual_seed(0)
    return F.layer_norm(torch.randn(r, n, d), (d,))


def test_other_view_tokens_of_the_same_crop_are_its_own_and_of_the_mirror_are_mirrored():
    from vjepa.model.jepa import other_view_tokens

    g, d = 4, 8
    h = _normed(4, g * g, d)  # 2 views x 2 images, view-major
    same = other_view_tokens(h, _theta(*[(0.5, 0.5, 0.6, 0.6, 1.0)] * 4), g, 2)
    torch.testing.assert_close(same[:2], h[2:], atol=1e-4, rtol=0)  # view 0's targets: view 1's tokens
    torch.testing.assert_close(same[2:], h[:2], atol=1e-4, rtol=0)  # and the last view's: the first's
    mirrored = other_view_tokens(
        h,
        _theta(
            (0.5, 0.5, 0.6, 0.6, 1.0), (0.4, 0.3, 0.5, 0.7, 1.0), (0.5, 0.5, 0.6, 0.6, -1.0), (0.4, 0.3, 0.5, 0.7, -1.0)
        ),
        g,
        2,
    )
    flip = lambda t: t.view(-1, g, g, d).flip(2).reshape(-1, g * g, d)
    torch.testing.assert_close(mirrored[:2], flip(h[2:]), atol=1e-4, rtol=0)


def test_other_view_tokens_interpolate_inside_the_other_view_and_keep_their_own_outside():
    from vjepa.model.jepa import other_view_tokens

    g, d = 4, 8
    h = _normed(2, g * g, d)  # view 0: the whole image; view 1: its right half (full height)
    out = other_view_tokens(h, _theta((0.5, 0.5, 1.0, 1.0, 1.0), (0.75, 0.5, 0.5, 1.0, 1.0)), g, 2)[0].view(g, g, d)
    own, other = h[0].view(g, g, d), h[1].view(g, g, d)
    torch.testing.assert_close(out[:, :2], own[:, :2])  # the left half is outside view 1
    # Column 2 (x = 0.25) is x = -0.5 in view 1: halfway between its columns 0 and 1 (centres at
    # -0.75 and -0.25); column 3 (0.75) is 0.5 there: halfway between columns 2 and 3; then layer-normed.
    for col, (a, b) in ((2, (0, 1)), (3, (2, 3))):
        torch.testing.assert_close(out[:, col], F.layer_norm((other[:, a] + other[:, b]) / 2, (d,)), atol=1e-5, rtol=0)


def test_target_view_other_trains_and_needs_two_views(params, digits_dir, tmp_path):
    from vjepa.core.config import validate
    from vjepa.core.errors import ConfigError
    from vjepa.training.train import train

    params = tiny(params)
    params["trunk"]["target_view"] = "other"
    params["train"].update(eval_every=0)
    cfg = resolve(params, "mdn")
    assert train(cfg, digits_dir, tmp_path, progress=False)["step"] == 6
    one = {**params, "trunk": {**params["trunk"], "global_views": 1, "invariance_weight": 0.0}}
    with pytest.raises(ConfigError, match="target_view = other .* trunk.global_views = 1"):
        validate(one)


def test_top_block_outputs_end_in_the_encoders_output(model_and_batch):
    _, model, x, _ = model_and_batch
    outs = model.teacher.top_block_outputs(x, 2)
    assert len(outs) == 2
    torch.testing.assert_close(model.teacher.norm(outs[-1]), model.teacher(x))


def test_instance_normed_targets_ignore_what_all_tokens_of_an_image_share(params, monkeypatch):
    """trunk.target_norm = instance: a per-image, per-channel shift of every teacher token leaves the
    targets as they are (layer norm alone does not); trunk.target_layers averages the top blocks."""
    params = tiny(params)
    x = torch.randn(4, 3, 16, 16)
    shift = torch.randn(4, 1, params["model"]["embed_dim"]) * 3
    for norm, invariant in (("instance", True), ("layer", False)):
        params["trunk"].update(target_norm=norm)
        torch.manual_seed(0)
        model = JEPA(resolve(params, "deterministic"))
        plain = model.teacher_tokens(x)
        real = model.teacher.forward
        monkeypatch.setattr(model.teacher, "forward", lambda images, keep=None: real(images, keep) + shift)
        shifted = model.teacher_tokens(x)
        monkeypatch.undo()
        assert torch.allclose(plain, shifted, atol=1e-4) == invariant
    params["trunk"].update(target_norm="layer", target_layers=2)
    torch.manual_seed(0)
    model = JEPA(resolve(params, "deterministic"))
    a, b = model.teacher.top_block_outputs(x, 2)
    ln = lambda t: F.layer_norm(t, t.shape[-1:])
    torch.testing.assert_close(model.teacher_tokens(x), ln((ln(a) + ln(b)) / 2))
