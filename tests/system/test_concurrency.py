"""Two runs in one directory: the second is told clearly, and the first is not disturbed."""

import os
import shutil
import subprocess
import time

import pytest

from vjepa.cli import main
from vjepa.core.errors import VJepaError
from vjepa.core.io import exclusive_use

from conftest import tiny, write_params


@pytest.mark.slow
def test_second_training_of_the_same_head_is_refused(tmp_path, params, capsys):
    p = tiny(params)
    f = write_params(tmp_path / "params.yaml", p)
    common = ["--params", str(f), "--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "r"), "--quiet"]
    assert main(["prepare", *common]) == 0 and main(["stats", *common]) == 0
    head_dir = tmp_path / "r" / "heads" / "deterministic" / "seed0"
    with exclusive_use(head_dir, "a training"):  # as if another process were training this head
        capsys.readouterr()
        assert main(["train", "--head", "deterministic", *common]) == 2
        assert "is in use: process" in capsys.readouterr().err
        assert not head_dir.exists()
        assert main(["train", "--head", "mdn", *common]) == 0  # another head's folder is free
    assert main(["train", "--head", "deterministic", *common]) == 0  # free again once released


def test_lock_is_released_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with exclusive_use(tmp_path, "x"):
            raise RuntimeError
    with exclusive_use(tmp_path, "x"):
        with pytest.raises(VJepaError, match="in use"):
            with exclusive_use(tmp_path, "y"):
                pass


@pytest.mark.slow
def test_second_snakemake_run_is_refused_and_the_first_finishes(tmp_path):
    from project import BIN, project_copy, run

    if not (BIN / "snakemake").exists():
        pytest.skip("snakemake is installed by scripts/setup.sh")
    root = project_copy(tmp_path / "p")
    target = "results/heads/deterministic/seed0/checkpoint.pt"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [str(BIN / "snakemake"), "--cores", "1", target],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    locks, deadline = root / ".snakemake" / "locks", time.time() + 120
    while not (locks.exists() and any(locks.iterdir())):  # the first run holds Snakemake's lock
        assert first.poll() is None and time.time() < deadline, first.stdout.read()
        time.sleep(0.1)
    second = run(["snakemake", "--cores", "1", target], root, check=False)
    # Snakemake checks the incomplete markers of the first run's running jobs before its lock, so
    # which of its two refusals comes depends on whether the first run has started a job yet.
    said = second.stdout + second.stderr
    assert second.returncode != 0 and ("cannot be locked" in said or "Incomplete files" in said), said
    assert first.wait(timeout=600) == 0, first.stdout.read()
    assert (root / target).is_file()


def test_the_main_command_refuses_to_start_beside_another_snakemake_and_touches_nothing(tmp_path):
    """`scripts/demo.sh` names the other run's process and leaves its lock alone."""
    from project import ROOT

    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "demo.sh", tmp_path / "scripts" / "demo.sh")
    lock = tmp_path / ".snakemake" / "locks" / "0.output.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("the other run's outputs")
    # a process whose command line says snakemake, working in the same folder
    other = subprocess.Popen(["bash", "-c", "exec -a snakemake sleep 60"], cwd=tmp_path)
    try:
        time.sleep(0.3)
        done = subprocess.run(["bash", "scripts/demo.sh"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    finally:
        other.kill()
        other.wait()
    assert done.returncode == 1
    assert f"another Snakemake (process {other.pid}) is running in {tmp_path}" in done.stderr
    assert lock.read_text() == "the other run's outputs"
