"""A real `vjepa train` process killed (SIGKILL) or stopped (SIGTERM) mid-run resumes, on rerun of the
same command, to bitwise the same weights and training curve as a run that was never interrupted."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vjepa.data.sources import compute_stats, prepare
from vjepa.model import checkpoint

from conftest import ROOT, tiny, write_params

HEAD = "flow"  # its ActNorm's data-dependent initialisation must survive the resume too


@pytest.fixture(scope="module")
def setup(tmp_path_factory, default_params):
    import copy

    d = tmp_path_factory.mktemp("interrupt")
    prepare(
        "digits", d / "data" / "processed", image_size=16, num_classes=10, path=None, val_fraction=0.2, split_seed=0
    )
    compute_stats(d / "data" / "processed" / "train.npz", d / "data" / "stats.json")
    params = tiny(copy.deepcopy(default_params))
    params["train"].update(steps=100, ckpt_every=7, log_every=5, eval_every=50)
    params_file = write_params(d / "params.yaml", params)
    reference = d / "reference"
    assert run_train(params_file, d / "data", reference).wait(timeout=300) == 0
    return d, params_file


def run_train(params_file: Path, data_dir: Path, results_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vjepa",
            "train",
            "--params",
            str(params_file),
            "--head",
            HEAD,
            "--data-dir",
            str(data_dir),
            "--results-dir",
            str(results_dir),
            "--quiet",
            "--threads",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"training ended before {path.name} appeared:\n{proc.stdout.read()}"
        assert time.time() < end, f"{path} did not appear"
        time.sleep(0.02)


def wait_for_rewrite(path: Path, proc: subprocess.Popen, timeout: float = 120) -> float:
    """Seconds until `path` is written again (atomically: a new file in its place)."""
    first, start = (path.stat().st_ino, path.stat().st_mtime_ns), time.time()
    while (path.stat().st_ino, path.stat().st_mtime_ns) == first:
        assert proc.poll() is None, f"training ended before {path.name} was written again:\n{proc.stdout.read()}"
        assert time.time() < start + timeout, f"{path} was not written again"
        time.sleep(0.005)
    return time.time() - start


def assert_same_run(a: Path, b: Path) -> None:
    ref, got = checkpoint.load(a / "checkpoint.pt"), checkpoint.load(b / "checkpoint.pt")
    assert got["step"] == ref["step"]
    for k, v in ref["model"].items():
        assert torch.equal(v, got["model"][k]), k
    assert got["history"] == ref["history"]
    assert (b / "train_curve.csv").read_text() == (a / "train_curve.csv").read_text()
    assert not (b / "resume.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_training_resumes_to_the_same_result(setup, tmp_path, sig):
    d, params_file = setup
    head_dir = tmp_path / "heads" / HEAD / "seed0"
    proc = run_train(params_file, d / "data", tmp_path)
    wait_for(head_dir / "resume.pt", proc)  # step 7
    seven = wait_for_rewrite(head_dir / "resume.pt", proc)  # step 14: the time of 7 steps on this machine
    time.sleep(random.uniform(0.0, 2 * seven))  # a random step about 14 to 28 of 100, at any machine's speed
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    out = proc.stdout.read()
    assert code != 0, f"training finished before the signal arrived:\n{out}"
    saved = checkpoint.load(head_dir / "resume.pt")
    if sig == signal.SIGTERM:  # a clean stop: the current step is saved and the command says so
        assert code == 130 and "interrupted: saved step" in out and "vjepa: interrupted" in out
        assert f"saved step {saved['step']} " in out
    else:
        assert code == -signal.SIGKILL and saved["step"] % 7 == 0
    assert not (head_dir / "checkpoint.pt").exists()
    assert run_train(params_file, d / "data", tmp_path).wait(timeout=300) == 0
    assert_same_run(d / "reference" / "heads" / HEAD / "seed0", head_dir)
