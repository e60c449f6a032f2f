"""The benchmark scripts still run, and what they compare is comparable (no timings asserted here)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT

BENCH = ROOT / "benchmarks"
SMOKE = ROOT / "profiles" / "smoke.yaml"
sys.path.insert(0, str(BENCH))

import knn as knn_bench  # noqa: E402
import train_step  # noqa: E402
from common import config, sized_params  # noqa: E402

from vjepa.model.jepa import param_groups  # noqa: E402


@pytest.mark.parametrize("head", ["deterministic", "mdn"])
def test_naive_reference_computes_the_real_loss(head):
    """The naive step (written-out attention, per-block predictor, per-image crops) gives the loss of the
    real model with I-JEPA's per-block predictor on the same weights and batch."""
    params = sized_params(SMOKE, "default")
    bench = train_step.Bench(config(params, head), batch=6, device=torch.device("cpu"))
    assert train_step.check_naive(params, bench, head) < 1e-5


def test_naive_step_trains_the_same_weights():
    """Three naive steps (written-out attention, per-block predictor, per-image crops, AdamW one
    parameter at a time, per-parameter EMA loop) and three real steps (`training_step`) from the same
    weights on the same batches give the same losses (rel 1e-5) and end at the same student weights
    (within 1e-6, where each step moves them by about lr = 1e-4) and teacher (within 2.5e-7, two
    float32 ulps at 1). Student weights whose gradient is rounding noise (|AdamW first moment| below
    1e-4 of its rms: e.g. the projector's last bias, which standardisation cancels) are left out:
    AdamW moves those by about lr either way."""
    params = sized_params(SMOKE, "default")
    cfg = config(params, "deterministic", model__predictor_pass="per_block")  # the naive predictor's pass
    real, naive = (train_step.Bench(cfg, batch=6, device=torch.device("cpu")) for _ in range(2))
    start = {k: v.clone() for k, v in real.model.state_dict().items()}
    assert all(torch.equal(v, naive.model.state_dict()[k]) for k, v in start.items())
    opt = torch.optim.AdamW(param_groups(naive.model, 0.05), lr=1e-4, betas=(0.9, 0.95), foreach=False)
    assert [(g["lr"], g["betas"], g["weight_decay"]) for g in real.opt.param_groups] == [
        (g["lr"], g["betas"], g["weight_decay"]) for g in opt.param_groups
    ]  # make_optimizer's settings
    for i in range(3):
        ours, theirs = naive.naive_step(i, opt), real.step(i).loss
        assert torch.isfinite(ours) and ours.item() == pytest.approx(theirs.item(), rel=1e-5), i
    a, b = real.model.state_dict(), naive.model.state_dict()
    names = {id(p): n for n, p in real.model.named_parameters()}
    moments = {names[id(p)]: real.opt.state[p]["exp_avg"] for g in real.opt.param_groups for p in g["params"]}
    rms = torch.cat([m.flatten() for m in moments.values()]).square().mean().sqrt()
    compared = 0
    for name, m in moments.items():
        keep = m.abs() > 1e-4 * rms
        torch.testing.assert_close(b[name][keep], a[name][keep], rtol=0, atol=1e-6, msg=name)
        assert (a[name] - start[name]).abs().max() > 1e-4, name  # every tensor trained
        compared += int(keep.sum())
    assert compared > 0.8 * sum(m.numel() for m in moments.values())
    for name in (k for k in a if k.startswith("teacher.")):
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=2.5e-7, msg=name)
        assert not torch.equal(a[name], start[name]), name


def test_flop_count_grows_with_the_batch():
    params = sized_params(SMOKE, "default")
    small = train_step.count_flops(train_step.Bench(config(params, "deterministic"), 4, torch.device("cpu")), range(1))
    large = train_step.count_flops(train_step.Bench(config(params, "deterministic"), 8, torch.device("cpu")), range(1))
    assert small > 0 and 1.8 < large / small < 2.2


def test_knn_benchmark_rule_is_scikit_learns():
    data = knn_bench.features(800, 200, 128, 10)
    ours = knn_bench.run_vjepa(data)[0]
    theirs = knn_bench.run_sklearn(data)[0]
    assert np.array_equal(ours, theirs)
    assert 0.3 < (ours == data[3]).mean() < 0.9  # the vote is neither trivial nor random (chance: 0.1)


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args",
    [
        ("train_step.py", ["--sizes", "default", "--batches", "8", "--steps", "2", "--heads", "deterministic", "flow"]),
        ("data_path.py", ["--sizes", "default", "--batch", "8", "--repeats", "2"]),
        ("heads.py", ["--sizes", "default", "--batch", "8", "--steps", "1", "--draws", "1", "3"]),
        ("gpu_check.py", ["--device", "cpu", "--batch", "4", "--steps", "1", "--heads", "deterministic"]),
        ("knn.py", ["--train", "600", "--val", "100", "--dim", "16", "--classes", "5"]),
        ("probe.py", ["--n-train", "600", "--n-val", "100", "--dim", "16", "--classes", "5"]),
        ("predictor_pass.py", ["--steps", "2"]),
    ],
)
def test_benchmark_scripts_run(tmp_path, script, args):
    out = tmp_path / "out.json"
    extra = [] if script in ("knn.py", "probe.py") else ["--params", str(SMOKE)]
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args, *extra, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text())


SWEEP_SETTINGS = """
budget: {train.steps: 3, train.warmup_steps: 1, train.eval_every: 0, train.ckpt_every: 3, trunk.global_views: 1,
         trunk.projector_dim: 0, trunk.standardize: false, trunk.invariance_weight: 0.0, trunk.covariance_weight: 0.0}
settings:
  - name: paper
    what: one view, the head's loss alone
    set: {}
  - name: two-views
    what: two views, standardised invariance
    set: {trunk.global_views: 2, trunk.projector_dim: 16, trunk.standardize: true, trunk.invariance_weight: 2.0}
"""


def run_script(script: str, *args) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *map(str, args)], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


@pytest.mark.slow(seconds=60)
def test_trunk_sweep_trains_each_setting_once_and_writes_the_table(tmp_path, digits_dir):
    settings = tmp_path / "settings.yaml"
    settings.write_text(SWEEP_SETTINGS)
    out = tmp_path / "sweep"
    args = [
        "--params",
        SMOKE,
        "--settings",
        settings,
        "--data-dir",
        digits_dir,
        "--out",
        out,
        "--jobs",
        "2",
        "--threads",
        "1",
    ]
    run_script("trunk_sweep.py", *args)
    table = json.loads(out.with_suffix(".json").read_text())
    assert [r["name"] for r in table["rows"]] == ["paper", "two-views"]
    assert table["what"]["two-views"] == "two views, standardised invariance"
    for r in table["rows"]:
        assert 0 <= r["knn_top1"] <= 1 and 0 <= r["probe_top1"] <= 1 and 0 <= r["knn_top1_whitened"] <= 1
        assert r["step"] == 3 and r["effective_rank"] >= 1
    shares = {r["name"]: r["gradient_share"]["predict_share"] for r in table["rows"]}
    assert shares["paper"] == 1.0 and 0 < shares["two-views"] < 1  # the masked-token loss alone, or beside a term
    assert {"raw_pixels", "random_init"} <= set(table["floors"])
    md = out.with_suffix(".md").read_text()
    assert "| paper |" in md and "| two-views |" in md and "| raw pixels | floor |" in md
    # A rerun keeps finished runs; changing one setting retrains that one only.
    first = {r["name"]: r["train_s"] for r in table["rows"]}
    settings.write_text(SWEEP_SETTINGS.replace("trunk.invariance_weight: 2.0", "trunk.invariance_weight: 1.0"))
    run_script("trunk_sweep.py", *args)
    again = {r["name"]: r for r in json.loads(out.with_suffix(".json").read_text())["rows"]}
    assert again["paper"]["train_s"] == first["paper"]
    assert again["two-views"]["set"]["trunk.invariance_weight"] == 1.0


@pytest.mark.slow(seconds=60)
def test_head_comparison_summarises_heads_and_seeds_under_the_paper_trunk(tmp_path, digits_dir):
    out = tmp_path / "study"
    run_script(
        "head_comparison.py",
        "--params",
        SMOKE,
        "--data-dir",
        digits_dir,
        "--out",
        out,
        "--heads",
        "deterministic",
        "mdn",
        "--seeds",
        "0",
        "1",
        "--trunk",
        "paper",
        "--jobs",
        "2",
        "--threads",
        "1",
        "--set",
        "train.steps=3",
        "--set",
        "train.eval_every=0",
    )
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["seeds"] == [0, 1] and set(summary["heads"]) == {"deterministic", "mdn"}
    assert summary["heads"]["mdn"]["knn_top1_std"] is not None  # two seeds: a spread
    assert len(summary["comparison"]["knn_top1"]) == 1 and summary["comparison"]["knn_top1"][0]["p"] is not None
    import torch as _torch

    ckpt = _torch.load(out / "heads" / "mdn" / "seed1" / "checkpoint.pt", weights_only=True)
    assert ckpt["config"]["trunk"]["global_views"] == 1 and ckpt["config"]["trunk"]["invariance_weight"] == 0.0
    assert "| mdn |" in (out / "table.md").read_text() and (out / "tex" / "table1.tex").is_file()
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["metric"] == "knn_top1" and verdict["seeds"] == [0, 1] and len(verdict["pairs"]) == 1
    pair = verdict["pairs"][0]
    assert (pair["a"], pair["b"]) == ("deterministic", "mdn") and len(pair["diffs"]) == 2
    assert pair["verdict"] in {"better", "worse", "equivalent", "unresolved"}
    assert json.loads((out / "verdict_probe.json").read_text())["metric"] == "probe_top1"
    whitened = json.loads((out / "verdict_whitened.json").read_text())
    run = json.loads((out / "heads" / "mdn" / "seed1" / "metrics.json").read_text())
    det = json.loads((out / "heads" / "deterministic" / "seed1" / "metrics.json").read_text())
    expected = 100 * (det["knn_top1_whitened"] - run["knn_top1_whitened"])
    assert whitened["metric"] == "knn_top1_whitened" and abs(whitened["pairs"][0]["diffs"][1] - expected) < 1e-3
    assert "Verdicts on whitened kNN top-1" in (out / "table.md").read_text()
    assert "| deterministic | mdn |" in (out / "table.md").read_text()
    scores = json.loads((out / "scores_vs_knn.json").read_text())["scores"]
    assert scores["nll_per_dim"]["heads"] == ["mdn"] and scores["energy_score_per_dim"]["runs"] == 4
    timing = json.loads((out / "heads" / "mdn" / "seed1" / "timing.json").read_text())
    # the training's own CPU seconds: at least PyTorch's import, at most what one thread gives in its wall time
    assert 1.0 < timing["train_cpu_s"] <= 1.5 * timing["train_s"] + 1.0, timing


@pytest.mark.slow(seconds=30)
def test_ddp_benchmark_runs_both_world_sizes_on_one_global_batch(tmp_path):
    out = tmp_path / "ddp.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "ddp.py"),
            "--params",
            str(SMOKE),
            "--batch",
            "8",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--threads",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = json.loads(out.read_text())["runs"]
    assert [r["processes"] for r in runs] == [1, 2] and [r["threads_per_process"] for r in runs] == [2, 1]
    assert runs[1]["first_loss"] == pytest.approx(runs[0]["first_loss"], rel=1e-5)
    assert all(r["embedded_images"] == 1797 and r["embed_split_s"] > 0 for r in runs)


def test_gradient_share_benchmark_times_plain_and_measured_steps(tmp_path):
    out = tmp_path / "share.json"
    run_script("gradient_share.py", "--params", SMOKE, "--steps", "6", "--out", out)
    r = json.loads(out.read_text())
    assert r["measured_step_s"] > 0 and r["step_s"] > 0 and r["log_every"] >= 1
    assert r["added_fraction"] == pytest.approx((r["measured_step_s"] - r["step_s"]) / (r["log_every"] * r["step_s"]))
