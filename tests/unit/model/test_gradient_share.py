"""The loss parts' gradient norms on the encoder (known answers), trunk.predict_share (the set share
reached), trunk.predict_weight = 0 (no predictor or head trained), and their record in a run."""

import json
import math

import pytest
import torch

from vjepa.core.config import resolve, validate
from vjepa.core.errors import ConfigError
from vjepa.model import checkpoint, gradient_share
from vjepa.model.jepa import JEPA, scale_gradient
from vjepa.model.masks import MultiBlockMaskSampler
from vjepa.training.batch import Batch
from vjepa.training.train import make_optimizer, train, training_step

from conftest import tiny


def test_part_norms_of_a_constructed_two_term_loss_are_the_known_gradient_norms():
    w = [torch.tensor([1.0, -2.0, 2.0], requires_grad=True), torch.tensor([[3.0, 0.0], [0.0, 4.0]], requires_grad=True)]
    parts = {
        "a": 3 * (w[0].sum() + w[1].sum()),  # gradient 3 everywhere: norm 3·√7
        "b": 0.5 * (w[0].square().sum() + w[1].square().sum()),
    }  # gradient w: norm ‖w‖ = √(9 + 25)
    norms = gradient_share.part_gradient_norms(parts, w)
    assert norms["a"].item() == pytest.approx(3 * math.sqrt(7), rel=1e-6)
    assert norms["b"].item() == pytest.approx(math.sqrt(34), rel=1e-6)
    # A part that does not reach some parameters counts them as zero; one that reaches none is 0.
    only = gradient_share.part_gradient_norms({"c": 2 * w[0].sum(), "d": torch.ones((), requires_grad=True) * 1}, w)
    assert only["c"].item() == pytest.approx(2 * math.sqrt(3)) and only["d"].item() == 0.0
    # The graph stays for the step's own backward, which still gives the summed gradient.
    (parts["a"] + parts["b"]).backward()
    torch.testing.assert_close(w[0].grad, 3 + w[0].detach())
    s = gradient_share.scalars(norms)
    assert s["predict_share"].item() == 0.0  # no masked-token part
    s = gradient_share.scalars({"predict": torch.tensor(1.0), "inv": torch.tensor(3.0)})
    assert s["predict_share"].item() == pytest.approx(0.25) and s["enc_grad_inv"].item() == 3.0


def test_scale_gradient_is_the_identity_forward_and_scales_the_gradient():
    x = torch.randn(5, requires_grad=True)
    y = scale_gradient(x, torch.tensor(0.25))
    assert torch.equal(y, x)
    (y * torch.arange(5.0)).sum().backward()
    torch.testing.assert_close(x.grad, 0.25 * torch.arange(5.0))
    assert scale_gradient(x, None) is x


def toy_parts(w: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """A masked-token part reaching `w` through the gradient scale (gradient norm 10·scale) and a
    cross-view part (gradient norm 2), as in JEPA.forward."""
    return {
        "predict": 10 * scale_gradient(w, scale).sum() / math.sqrt(w.numel()),
        "inv": 2 * w.sum() / math.sqrt(w.numel()),
    }


@pytest.mark.parametrize("share", [0.5, 0.2, 0.9])
def test_the_equal_share_rescaling_gives_the_set_share(share):
    w, scale = torch.randn(16, requires_grad=True), torch.ones(())
    norms = gradient_share.part_gradient_norms(toy_parts(w, scale), [w])
    assert gradient_share.scalars(norms)["predict_share"].item() == pytest.approx(10 / 12, rel=1e-5)
    gradient_share.update_scale(scale, norms, share, first=True)  # the first measurement sets the scale
    assert scale.item() == pytest.approx(share / (1 - share) * 2 / 10, rel=1e-5)
    again = gradient_share.part_gradient_norms(toy_parts(w, scale), [w])
    assert gradient_share.scalars(again)["predict_share"].item() == pytest.approx(share, rel=1e-5)
    # Later ones move log-scale (1 - SMOOTHING) of the way to the scale wanted for their batch.
    before = scale.clone()
    doubled = {**again, "inv": 2 * again["inv"]}  # the cross-view gradient doubled: twice the scale wanted
    gradient_share.update_scale(scale, doubled, share, first=False)
    assert scale.item() == pytest.approx(before.item() * 2 ** (1 - gradient_share.SMOOTHING), rel=1e-5)


def test_a_non_finite_measurement_leaves_the_scale():
    scale = torch.full((), 0.3)
    gradient_share.update_scale(scale, {"predict": torch.tensor(0.0), "inv": torch.tensor(float("nan"))}, 0.5, False)
    assert scale.item() == pytest.approx(0.3)


def test_no_masked_token_gradient_leaves_the_scale_and_the_scale_is_bounded():
    # RNADE at step 0: its output layer starts at zero, so its loss sends the encoder no gradient
    scale = torch.ones(())
    gradient_share.update_scale(scale, {"predict": torch.tensor(0.0), "inv": torch.tensor(2.2)}, 0.1, first=True)
    assert scale.item() == 1.0
    # a gradient 1e-8 of the cross-view term's would want a scale of 1e8: it is held at MAX_SCALE
    gradient_share.update_scale(scale, {"predict": torch.tensor(2e-8), "inv": torch.tensor(2.0)}, 0.5, first=True)
    assert scale.item() == pytest.approx(gradient_share.MAX_SCALE)


def test_an_rnade_run_at_a_set_share_trains_with_a_finite_bounded_scale(params, digits_dir, tmp_path):
    params = tiny(params)
    params["trunk"]["predict_share"] = 0.1
    params["train"]["steps"] = 4
    cfg = resolve(params, "rnade")
    train(cfg, digits_dir, tmp_path / "run", progress=False)
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    scale = float(state["model"]["predict_scale"])
    assert math.isfinite(scale) and 0 < scale <= gradient_share.MAX_SCALE


def step_batch(cfg, model, seed=0):
    rows = cfg.trunk.global_views * cfg.train.batch_size
    g = torch.Generator().manual_seed(seed)
    masks = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)(rows, g)
    return Batch(torch.randn(rows, 3, 16, 16, generator=g), masks, None)


def test_predict_weight_zero_trains_no_predictor_or_head_parameter(params):
    params = tiny(params)
    params["trunk"]["predict_weight"] = 0.0
    for head in ("deterministic", "mdn"):
        cfg = resolve(params, head)
        torch.manual_seed(0)
        model = JEPA(cfg)
        assert not any(p.requires_grad for p in (*model.predictor.parameters(), *model.head.parameters()))
        before = {n: p.clone() for n, p in model.named_parameters()}
        opt = make_optimizer(model, 0.05, 1e-3, torch.device("cpu"))
        out = training_step(model, model, opt, step_batch(cfg, model), 0.99, 3.0, measure=True)
        assert set(out.part_norms) == {"inv", "cov"} and out.cond is None and "head_loss" not in out.diag
        moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
        assert not any(n.startswith(("predictor.", "head.")) for n in moved)
        assert any(n.startswith("encoder.") for n in moved) and any(n.startswith("cross_view.") for n in moved)
        assert not {n for n, p in model.named_parameters() if p.requires_grad and n.startswith(("predictor.", "head."))}


def test_predict_weight_scales_the_masked_token_part_and_one_leaves_the_loss_as_it_was(params):
    params = tiny(params)
    cfg = resolve(params, "deterministic")
    torch.manual_seed(0)
    model = JEPA(cfg)
    batch = step_batch(cfg, model)
    loss, parts, diag, _, _ = model(batch.views, batch.masks)
    assert torch.equal(parts["predict"], diag["head_loss"])  # weight 1: the head's loss itself
    assert torch.equal(loss, parts["predict"] + (torch.zeros(()) + parts["inv"] + parts["cov"]))
    params["trunk"]["predict_weight"] = 0.5
    half = JEPA(resolve(params, "deterministic"))
    half.load_state_dict(model.state_dict())
    _, hparts, hdiag, _, _ = half(batch.views, batch.masks)
    torch.testing.assert_close(hparts["predict"], 0.5 * hdiag["head_loss"])
    torch.testing.assert_close(hdiag["head_loss"], diag["head_loss"])


def test_bad_combinations_are_refused(params):
    params = tiny(params)
    nothing = {**params["trunk"], "predict_weight": 0.0, "invariance_weight": 0.0, "covariance_weight": 0.0}
    with pytest.raises(ConfigError, match="nothing would train the encoder"):
        validate({**params, "trunk": nothing})
    alone = {**params["trunk"], "predict_share": 0.5, "invariance_weight": 0.0, "covariance_weight": 0.0}
    with pytest.raises(ConfigError, match="predict_share = 0.5 .* needs both"):
        validate({**params, "trunk": alone})


@pytest.mark.slow
def test_a_run_logs_the_shares_and_metrics_json_summarises_them(params, digits_dir, tmp_path):
    """A run with trunk.predict_share: the logged share is held near the set share (on average: each
    measurement is one batch's, taken before the scale it leads to), where without it the masked-token
    loss's share is tiny; the curve has every part's norm; evaluate writes the summary."""
    from vjepa.eval.embed import embed
    from vjepa.eval.evaluate import evaluate
    from vjepa.training.train import train

    params = tiny(params)
    params["train"].update(steps=30, log_every=3, eval_every=0, ckpt_every=30)
    params["trunk"]["predict_share"] = 0.4
    cfg = resolve(params, "deterministic")
    train(cfg, digits_dir, tmp_path, progress=False)
    rows = list(csv_rows(tmp_path / "train_curve.csv"))
    assert {"enc_grad_predict", "enc_grad_inv", "enc_grad_cov", "predict_share", "predict_scale"} <= set(rows[0])
    shares = [float(r["predict_share"]) for r in rows]
    assert shares[0] < 0.01  # measured before the first scale
    assert sum(shares[1:]) / len(shares[1:]) == pytest.approx(0.4, abs=0.1)
    params["trunk"]["predict_share"] = None
    train(resolve(params, "deterministic"), digits_dir, tmp_path / "plain", progress=False)
    plain = [float(r["predict_share"]) for r in csv_rows(tmp_path / "plain" / "train_curve.csv")]
    assert max(plain) < 0.05 and "predict_scale" not in next(csv_rows(tmp_path / "plain" / "train_curve.csv"))
    embed(tmp_path / "checkpoint.pt", digits_dir, tmp_path / "embeddings.npz", device="cpu", progress=False)
    m = evaluate(
        tmp_path / "embeddings.npz",
        tmp_path / "metrics.json",
        cfg,
        checkpoint_path=tmp_path / "checkpoint.pt",
        data_dir=digits_dir,
        score_head=False,
    )
    g = json.loads((tmp_path / "metrics.json").read_text())["gradient_share"]
    assert g == m["gradient_share"] and g["measurements"] == len(rows) and "head_metrics" not in m
    assert g["predict_share_second_half"] == pytest.approx(sum(shares[5:]) / 5)
    assert set(g["norms"]) == {"predict", "inv", "cov"}
    assert g["predict_scale_final"] == pytest.approx(float(rows[-1]["predict_scale"]))


def csv_rows(path):
    import csv

    with open(path) as f:
        yield from csv.DictReader(f)
