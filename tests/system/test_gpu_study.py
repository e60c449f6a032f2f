"""scripts/gpu_study.sh, the paper-sized study for one GPU, run end to end on a CPU at the smoke
profile's size (--device cpu --tiny), so that it cannot rot while no GPU is around; its refusals
and its deadline."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from vjepa.core.errors import DataError
from vjepa.model.heads import HEADS as REGISTERED_HEADS
from vjepa.pipeline import gpu_study

from conftest import ROOT
from images import hf_table as _hf_table

SCRIPT = ROOT / "scripts" / "gpu_study.sh"
HEADS = list(REGISTERED_HEADS)  # every head, in the registry's order


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


@pytest.mark.slow
def test_the_tiny_study_on_a_cpu_writes_table_one_throughput_and_stage_times(tin, tmp_path):
    out = tmp_path / "study"
    done = study("--data", tin, "--out", out, "--device", "cpu", "--tiny", check=True)
    assert "plan (deadline 600 s" in done.stdout  # printed before the trainings start
    assert done.stdout.index("plan (deadline") < done.stdout.index("train-deterministic")
    record = json.loads((out / "table1.json").read_text())
    assert record["complete"] and list(record["table"]["heads"]) == HEADS
    for head, row in record["table"]["heads"].items():
        assert row["finished"] and 0 <= row["knn_top1"] <= 1 and 0 <= row["probe_top1"] <= 1, head
        assert row["step"] == 4  # the smoke profile's budget
        speed = row["throughput"]
        assert speed["images_per_s"] > 0 and 0 < speed["mfu"] < 1 and speed["flops_per_step"] > 0, head
        assert record["plan"]["heads"][head]["images"] == 4 * 16
        assert (out / "work" / "results" / "heads" / head / "seed0" / "metrics.json").is_file()  # --work: OUT/work
    assert record["table"]["heads"]["diffusion"]["paper_knn_top1"] == 22.36
    assert record["table"]["heads"]["flow_matching"]["paper_knn_top1"] is None
    assert set(record["table"]["floors"]) == {"raw_pixels", "random_init"}
    stages = {s["stage"]: s for s in record["stages"]}
    assert {
        "prepare",
        "stats",
        "reference",
        "plan (timed steps)",
        *(f"{c}-{h}" for h in HEADS for c in ("train", "embed", "evaluate")),
    } <= set(stages)
    assert all(s["status"] == "ok" and s["seconds"] >= 0 for s in record["stages"])
    assert record["wall_s"] < 600 and record["torch"] and record["device"]
    md = (out / "table1.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows[1:9]] == [
        *HEADS,
        "raw pixels (floor)",
        "untrained encoder (floor)",
    ]
    knn = f"{100 * record['table']['heads']['mdn']['knn_top1']:.2f}"
    assert f"| mdn | {knn} |" in md and "| train-flow |" in md

    # --record's copy under results/gpu/DATE-DEVICE/, and the report's section from it
    from vjepa.report.latex import gpu_tex

    results = tmp_path / "results" / "gpu"
    assert "no GPU study recorded" in gpu_tex(results)
    assert record["device"] == (platform.processor() or "cpu")  # on a CPU, the processor's name
    gpu = {**record, "device": "NVIDIA H100 80GB HBM3"}  # the name CUDA gives an H100
    dest = gpu_study.record_in_results(out, gpu, results)
    assert dest == results / f"{datetime.date.fromisoformat(record['date'])}-nvidia-h100-80gb-hbm3"
    assert (dest / "README.md").is_file()
    assert {p.name for p in dest.iterdir()} == {"table1.md", "table1.json", "params.yaml", "logs", "README.md"}
    assert record["command"] in (dest / "README.md").read_text()
    tex = gpu_tex(results)
    assert tex.startswith("\\section{The paper-sized study on one GPU}") and f"results/gpu/{dest.name}" in tex
    assert f"Mixture density network & {knn} &" in tex and "22.36" in tex and "Raw pixels (floor)" in tex
    assert gpu_study.record_in_results(out, gpu, results).name == f"{dest.name}-2"  # a second one that day


@pytest.mark.slow
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
