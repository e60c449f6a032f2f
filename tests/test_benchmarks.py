"""The benchmark scripts still run, and what they compare is comparable (no timings asserted here)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SMOKE = ROOT / "profiles" / "smoke.yaml"
sys.path.insert(0, str(BENCH))

import knn as knn_bench  # noqa: E402
import train_step  # noqa: E402
from common import config, sized_params  # noqa: E402


@pytest.mark.parametrize("head", ["deterministic", "mdn"])
def test_naive_reference_computes_the_real_loss(head):
    """The naive step (written-out attention, per-block predictor, per-image crops) gives the loss of the
    real model with I-JEPA's per-block predictor on the same weights and batch."""
    params = sized_params(SMOKE, "default")
    bench = train_step.Bench(config(params, head), batch=6, device=torch.device("cpu"))
    assert train_step.check_naive(params, bench, head) < 1e-5


def test_naive_step_trains_the_same_weights():
    params = sized_params(SMOKE, "default")
    bench = train_step.Bench(config(params, "deterministic"), batch=6, device=torch.device("cpu"))
    before = [p.detach().clone() for p in bench.model.teacher.parameters()]
    opt = torch.optim.AdamW(bench.model.parameters(), lr=1e-3, foreach=False)
    loss = bench.naive_step(0, opt)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, bench.model.teacher.parameters()))


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


@pytest.mark.parametrize("script, args", [
    ("train_step.py", ["--sizes", "default", "--batches", "8", "--steps", "2", "--heads", "deterministic", "flow"]),
    ("data_path.py", ["--sizes", "default", "--batch", "8", "--repeats", "2"]),
    ("heads.py", ["--sizes", "default", "--batch", "8", "--steps", "1", "--draws", "1", "3"]),
    ("gpu_check.py", ["--device", "cpu", "--batch", "4", "--steps", "1", "--heads", "deterministic"]),
    ("knn.py", ["--train", "600", "--val", "100", "--dim", "16", "--classes", "5"]),
    ("probe.py", ["--n-train", "600", "--n-val", "100", "--dim", "16", "--classes", "5"]),
    ("predictor_pass.py", ["--steps", "2"]),
])
def test_benchmark_scripts_run(tmp_path, script, args):
    out = tmp_path / "out.json"
    extra = [] if script in ("knn.py", "probe.py") else ["--params", str(SMOKE)]
    proc = subprocess.run([sys.executable, str(BENCH / script), *args, *extra, "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text())
