"""Training: interrupted runs resume to the same weights; a short run learns better-than-random features."""

import pytest
import torch

from vjepa.core.config import resolve
from vjepa.core.errors import CheckpointError
from vjepa.model import checkpoint
from vjepa.training.train import train

from conftest import tiny


def test_interrupted_training_resumes_to_identical_weights(tmp_path, params, digits_dir, monkeypatch):
    cfg = resolve(tiny(params), "deterministic")
    train(cfg, digits_dir, tmp_path / "straight", progress=False)
    reference = checkpoint.load(tmp_path / "straight" / "checkpoint.pt")

    # Ctrl-C during step 5: the loop finishes that step, saves step 5 to resume.pt and stops.
    import os
    import signal

    import vjepa.training.train as train_module

    calls = {"n": 0}
    real = train_module.make_batch  # called once per training step

    def interrupt_on_fifth(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(train_module, "make_batch", interrupt_on_fifth)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # (SIG_IGN under nohup)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, digits_dir, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(train_module, "make_batch", real)
    saved = checkpoint.load(tmp_path / "resumed" / "resume.pt")
    assert saved["step"] == 5 and not (tmp_path / "resumed" / "checkpoint.pt").exists()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # handlers put back

    result = train(cfg, digits_dir, tmp_path / "resumed", progress=False)
    assert result["resumed"] and result["step"] == 6
    final = checkpoint.load(tmp_path / "resumed" / "checkpoint.pt")
    assert not (tmp_path / "resumed" / "resume.pt").exists()
    for k, v in reference["model"].items():
        assert torch.equal(v, final["model"][k]), k  # bitwise on CPU
    assert final["history"] == reference["history"]


@pytest.mark.slow
def test_changed_params_start_afresh(tmp_path, params, digits_dir):
    cfg = resolve(tiny(params), "deterministic")
    train(cfg, digits_dir, tmp_path, progress=False)
    params["train"]["lr"] = 5e-4
    result = train(resolve(params, "deterministic"), digits_dir, tmp_path, progress=False)
    assert not result["resumed"] and result["step"] == 6


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="cannot be read"):
        checkpoint.load(bad)
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(CheckpointError, match="not a vjepa checkpoint"):
        checkpoint.load(bad)
    torch.save({"format": checkpoint.FORMAT, "version": 99}, bad)
    with pytest.raises(CheckpointError, match="format version 99"):
        checkpoint.load(bad)


@pytest.mark.slow
def test_short_training_beats_the_random_initialisation(tmp_path, params, digits_dir):
    """A small version of the demo's claim: trained features beat the untrained encoder's by kNN."""
    from vjepa.eval.embed import embed
    from vjepa.eval.evaluate import evaluate

    data = digits_dir
    params["data"]["image_size"] = 16
    params["model"].update(
        patch_size=4, embed_dim=64, depth=2, num_heads=4, pred_dim=32, pred_depth=1, pred_num_heads=2
    )
    params["mask"].update(num_targets=2, min_context=4)
    params["train"].update(steps=100, batch_size=64, warmup_steps=10, log_every=50, eval_every=0, ckpt_every=1000)
    params["trunk"]["global_views"] = 2  # kNN 0.78 against 0.39 untrained (4 views x 150 steps: 0.85, 3x the time)
    cfg = resolve(params, "deterministic")
    out = tmp_path / "run"
    train(cfg, data, out, progress=False)
    embed(out / "checkpoint.pt", data, out / "trained.npz", progress=False)
    embed(out / "checkpoint.pt", data, out / "init.npz", random_init=True, progress=False)
    trained = evaluate(out / "trained.npz", out / "trained.json", cfg)["knn_top1"]
    init = evaluate(out / "init.npz", out / "init.json", cfg)["knn_top1"]
    assert trained > init + 0.03, (trained, init)


@pytest.mark.slow
def test_mdn_training_logs_sigma_and_weight_histograms(tmp_path, params, digits_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    params = tiny(params)
    params["heads"] = ["mdn"]
    train(resolve(params, "mdn"), digits_dir, tmp_path, progress=False)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"histograms": 0})
    events.Reload()
    assert {"head/sigma", "head/mixture_weights"} <= set(events.Tags()["histograms"])
    scalars = set(events.Tags()["scalars"])
    assert {
        "train/nll",
        "train/mixture_entropy",
        "train/effective_components",
        "train/lr",
        "train/ema_momentum",
        "train/grad_norm",
        "embed/effective_rank",
    } <= scalars
    sigmas = events.Histograms("head/sigma")[-1].histogram_value
    assert sigmas.min > 0


@pytest.mark.slow
def test_compile_option_trains_through_the_compiled_model(tmp_path, params, digits_dir, monkeypatch):
    """train.compile: the forward pass goes through torch.compile's module (a stand-in here: compiling
    on a CPU takes minutes), and the eager model's weights are what gets trained and saved."""
    calls = []

    def fake_compile(model, **kwargs):
        calls.append(kwargs)

        def forward(*a):
            calls.append("forward")
            return model(*a)

        return forward

    monkeypatch.setattr(torch, "compile", fake_compile)
    p = tiny(params)
    p["train"]["compile"] = True
    cfg = resolve(p, "deterministic")
    train(cfg, digits_dir, tmp_path / "run", progress=False)
    assert calls[0] == {"dynamic": True} and calls.count("forward") == cfg.train.steps
    assert checkpoint.load(tmp_path / "run" / "checkpoint.pt")["step"] == cfg.train.steps


@pytest.mark.slow
def test_a_resume_file_that_no_longer_fits_the_optimiser_starts_afresh(tmp_path, params, digits_dir, capsys):
    """E.g. one written before the trained parameters changed: said, then the run starts from step 0."""
    cfg = resolve(tiny(params), "deterministic")
    train(cfg, digits_dir, tmp_path / "straight", progress=False)
    reference = checkpoint.load(tmp_path / "straight" / "checkpoint.pt")
    stale = dict(reference, step=3)
    groups = [dict(g) for g in stale["optimizer"]["param_groups"]]
    groups[0]["params"] = groups[0]["params"][:-1]  # one parameter fewer than this model trains
    stale["optimizer"] = {"state": {}, "param_groups": groups}
    (tmp_path / "stale").mkdir()
    checkpoint.save(tmp_path / "stale" / "resume.pt", stale)
    result = train(cfg, digits_dir, tmp_path / "stale", progress=False)
    assert "does not fit this model or optimiser" in capsys.readouterr().out
    assert not result["resumed"] and result["step"] == 6
    final = checkpoint.load(tmp_path / "stale" / "checkpoint.pt")
    for k, v in reference["model"].items():
        assert torch.equal(v, final["model"][k]), k
