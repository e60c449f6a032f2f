"""scripts/gpu_study.sh, the paper-sized study for one GPU: its refusals, its deadline and its plan's
arithmetic. The study itself runs end to end on a CPU (--device cpu --tiny) through its recipe, in
test_gpu_recipe.py, so that it cannot rot while no GPU is around."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from vjepa.core.errors import DataError
from vjepa.pipeline import gpu_study

from conftest import ROOT
from images import hf_table as _hf_table

SCRIPT = ROOT / "scripts" / "gpu_study.sh"


def study(*args, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    done = subprocess.run(["bash", str(SCRIPT), *map(str, args)], env=env, capture_output=True, text=True, timeout=900)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def tin(tmp_path_factory) -> Path:
    """A Tiny ImageNet-style folder as it arrives in pieces: two train shards and valid.parquet."""
    d = tmp_path_factory.mktemp("tin")
    pq.write_table(_hf_table(120), d / "train-00000-of-00002.parquet")
    pq.write_table(_hf_table(120, offset=120), d / "train-00001-of-00002.parquet")
    pq.write_table(_hf_table(60, offset=240), d / "valid.parquet")
    return d


@pytest.mark.slow(seconds=50)
def test_a_plan_over_the_deadline_is_refused_in_one_line_before_any_training(tin, tmp_path):
    """A million steps cannot fit 300 s: once prepare, stats, reference and the timed steps have run
    (about 20 s), the plan is printed and refused in one line, and no training starts."""
    params = yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())
    params["heads"], params["data"]["num_classes"] = ["deterministic"], 6  # the fixture's classes
    params["train"]["steps"] = 1_000_000
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = study(
        "--data",
        tin,
        "--out",
        tmp_path / "late",
        "--device",
        "cpu",
        "--params",
        tmp_path / "params.yaml",
        "--deadline",
        "300",
    )
    last = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(last) == 1, done.stdout + done.stderr
    refusal = re.fullmatch(
        r"gpu_study: error: the plan needs (\d+) s but (\d+) s of the 300 s deadline are left; "
        r"raise --deadline, lower train\.steps \(--params \S+\), or pass --fit",
        last[0],
    )
    assert refusal and int(refusal[1]) > 300 > int(refusal[2]) > 0, last[0]
    assert "plan (deadline 300 s" in done.stdout and "deterministic  1000000" in done.stdout
    assert not list((tmp_path / "late" / "logs").glob("train-*.log"))
    assert (tmp_path / "late" / "work" / "data" / "processed" / "train.npz").is_file()  # --work: OUT/work


def test_missing_pieces_and_a_missing_gpu_are_one_line_errors(tin, tmp_path):
    partial = tmp_path / "partial"  # the first transfer only: one shard and valid
    partial.mkdir()
    for name in ("train-00000-of-00002.parquet", "valid.parquet"):
        (partial / name).write_bytes((tin / name).read_bytes())
    done = study("--data", partial, "--out", tmp_path / "o", "--device", "cpu", "--tiny")
    assert done.returncode == 2 and "lacks train-00001-of-00002.parquet" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    if not __import__("torch").cuda.is_available():
        done = study("--data", tin, "--out", tmp_path / "o")
        assert done.returncode == 2 and "no CUDA GPU is visible" in done.stderr and not (tmp_path / "o").exists()
    with pytest.raises(DataError, match="no valid.parquet"):
        (tmp_path / "novalid").mkdir()
        (tmp_path / "novalid" / "train.parquet").write_bytes(b"")
        gpu_study.check_data(tmp_path / "novalid")


def test_a_stage_that_would_pass_the_deadline_is_stopped():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    t0 = time.monotonic()
    assert gpu_study._wait(proc, budget=1.0) == "stopped at the deadline"
    assert time.monotonic() - t0 < 10 and proc.returncode is not None


def test_fit_lowers_the_steps_of_every_head_alike_until_the_plan_fits():
    timing = {
        "heads": {
            "a": {"seconds_per_step": 0.1, "batch_size": 8, "steps": 1000, "embed_seconds": 5.0},
            "b": {"seconds_per_step": 0.3, "batch_size": 8, "steps": 1000, "embed_seconds": 5.0},
        }
    }
    full = gpu_study.plan(timing, overhead_s=2.0, evaluate_s=10.0)
    assert full["total_s"] == pytest.approx(2 * 2 + 400 + 2 * (4 + 5 + 10))
    steps = gpu_study.fitted_steps(timing, 2.0, 10.0, budget_s=200.0)
    assert (
        gpu_study.plan(timing, 2.0, 10.0, steps)["total_s"]
        <= 200.0
        < gpu_study.plan(timing, 2.0, 10.0, steps + 1)["total_s"]
    )
    assert steps == 395  # (200 - 42) / (0.1 + 0.3)
