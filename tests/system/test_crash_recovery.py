"""A main job killed mid-training (SIGKILL to its whole process group, as a power loss or the
out-of-memory killer does) resumes with the README's one command, `bash scripts/demo.sh`, and ends
with the accuracies of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from project import BIN, ROOT, project_copy, run

pytestmark = pytest.mark.skipif(not (BIN / "snakemake").exists(), reason="snakemake is installed by scripts/setup.sh")

HEADS = ["deterministic", "mdn"]


def small_project(dest: Path) -> Path:
    """The smoke profile with two heads and trainings long enough to be killed after a periodic save."""
    root = project_copy(dest)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["heads"] = HEADS
    params["train"].update(steps=60, ckpt_every=20, eval_every=0, log_every=10)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "scripts").mkdir(exist_ok=True)
    shutil.copy2(ROOT / "scripts" / "demo.sh", root / "scripts" / "demo.sh")
    return root


def accuracies(root: Path) -> dict:
    out = {}
    for head in HEADS:
        m = json.loads((root / "results" / "heads" / head / "seed0" / "metrics.json").read_text())
        out[head] = (m["knn_top1"], m["probe_top1"])
    return out


@pytest.mark.slow(seconds=170)
def test_a_killed_main_job_resumes_with_the_documented_command(tmp_path):
    root = small_project(tmp_path / "killed")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(root / "src"),
        "CORES": "2",
    }
    job = subprocess.Popen(
        ["bash", "scripts/demo.sh"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    runs = [root / "results" / "heads" / h / "seed0" for h in HEADS]
    deadline = time.monotonic() + 300
    while not any((r / "resume.pt").is_file() and not (r / "checkpoint.pt").is_file() for r in runs):
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before a training saved resume.pt"
        time.sleep(0.1)
    os.killpg(job.pid, signal.SIGKILL)  # the whole process group: Snakemake and its jobs, no clean-up
    job.wait()
    assert list((root / ".snakemake" / "locks").iterdir())  # a stale lock: a bare rerun would be refused
    refused = run(["snakemake", "--cores", "2", "report"], root, check=False)
    assert refused.returncode != 0 and (
        "LockException" in refused.stderr + refused.stdout
        or "IncompleteFilesException" in refused.stderr + refused.stdout
    )

    done = subprocess.run(["bash", "scripts/demo.sh"], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "unlocking and rerunning its unfinished jobs" in done.stderr
    assert (root / "report" / "vjepa.pdf").is_file()

    whole = small_project(tmp_path / "whole")
    run(["snakemake", "--cores", "2", *[f"results/heads/{h}/seed0/metrics.json" for h in HEADS]], whole)
    assert accuracies(root) == accuracies(whole)
