"""Numeric faults: a NaN/Inf loss or gradient stops training (naming step and term, keeping the last good
checkpoint) or skips the step, as configured; a collapsed representation is reported."""

import json
import math

import pytest
import torch

from vjepa.cli import main
from vjepa.core.config import resolve
from vjepa.model import checkpoint
from vjepa.model.jepa import JEPA
from vjepa.training.train import NonFiniteLoss, train

from conftest import tiny, write_params


def cfg_for(params, **train):
    p = tiny(params)
    p["train"].update({"steps": 12, "log_every": 5, "ckpt_every": 3, "eval_every": 0, **train})
    return resolve(p, "deterministic")


def nan_loss_at(monkeypatch, bad_step: int):
    """The training loss becomes NaN on the given (1-based) step."""
    real, calls = JEPA.forward, {"n": 0}

    def forward(self, views, masks, local=None, geometry=None):
        loss, *rest = real(self, views, masks, local, geometry)
        calls["n"] += 1
        return (loss * math.nan if calls["n"] == bad_step else loss, *rest)

    monkeypatch.setattr(JEPA, "forward", forward)


@pytest.mark.slow
def test_nan_loss_stops_with_step_term_and_last_good_checkpoint(tmp_path, params, digits_dir, monkeypatch):
    nan_loss_at(monkeypatch, 8)
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss, grad_norm at step 8; .*last good checkpoint \(step 6\)"):
        train(cfg_for(params), digits_dir, tmp_path, progress=False)
    kept = checkpoint.load(tmp_path / "resume.pt")
    assert kept["step"] == 6 and not (tmp_path / "checkpoint.pt").exists()
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


@pytest.mark.slow
def test_inf_gradient_is_named(tmp_path, params, digits_dir, monkeypatch):
    real, calls = torch.nn.utils.clip_grad_norm_, {"n": 0}

    def clip(parameters, max_norm, *a, **k):
        parameters = list(parameters)
        calls["n"] += 1
        if calls["n"] == 4:
            parameters[0].grad.view(-1)[0] = math.inf
        return real(parameters, max_norm, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    with pytest.raises(NonFiniteLoss, match=r"non-finite grad_norm at step 4; .*last good checkpoint \(step 3\)"):
        train(cfg_for(params), digits_dir, tmp_path, progress=False)


@pytest.mark.slow
def test_skip_mode_drops_the_bad_step_and_finishes(tmp_path, params, digits_dir, monkeypatch):
    nan_loss_at(monkeypatch, 8)
    result = train(cfg_for(params, nonfinite="skip"), digits_dir, tmp_path, progress=False)
    assert result["step"] == 12
    final = checkpoint.load(tmp_path / "checkpoint.pt")
    assert final["skipped_steps"] == [8]
    assert all(torch.isfinite(v).all() for v in final["model"].values() if v.is_floating_point())


@pytest.mark.slow
def test_many_bad_steps_in_a_row_still_stop_in_skip_mode(tmp_path, params, digits_dir, monkeypatch):
    real = JEPA.forward
    monkeypatch.setattr(
        JEPA,
        "forward",
        lambda self, x, m, local=None, geometry=None: (
            real(self, x, m, local, geometry)[0] * math.nan,
            *real(self, x, m, local, geometry)[1:],
        ),
    )
    with pytest.raises(NonFiniteLoss, match="10 steps in a row"):
        train(cfg_for(params, nonfinite="skip", steps=30), digits_dir, tmp_path, progress=False)


@pytest.mark.slow
def test_collapse_is_reported_in_the_log_and_metrics(tmp_path, params, capsys):
    p = tiny(params)
    p["heads"] = ["deterministic"]
    p["train"].update(steps=6, eval_every=2, collapse_std=1e6, collapse_patience=2)  # any features count as collapsed
    f = write_params(tmp_path / "params.yaml", p)
    common = ["--params", str(f), "--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "r")]
    for cmd in (
        ["prepare"],
        ["stats"],
        ["train", "--head", "deterministic"],
        ["embed", "--head", "deterministic"],
        ["evaluate", "--head", "deterministic"],
    ):
        assert main([*cmd, *common]) == 0
    out = capsys.readouterr()
    assert "warning: representation collapse" in out.out + out.err
    m = json.loads((tmp_path / "r" / "heads" / "deterministic" / "seed0" / "metrics.json").read_text())
    assert len(m["training_warnings"]) == 1 and "for 2 evaluations" in m["training_warnings"][0]
    curve = (tmp_path / "r" / "heads" / "deterministic" / "seed0" / "knn_curve.csv").read_text()
    assert "feature_std" in curve.splitlines()[0]
