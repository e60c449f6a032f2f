"""Each GPU job on a shared machine claims its own GPU (vjepa.pipeline.gpus), so N jobs use N GPUs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vjepa.core.errors import ConfigError
from vjepa.pipeline import gpus


@pytest.fixture
def locks(tmp_path, monkeypatch):
    monkeypatch.setenv(gpus.ENV_LOCKS, str(tmp_path / "locks"))
    yield tmp_path / "locks"
    for f in gpus._held:
        f.close()
    gpus._held.clear()


def test_claims_take_different_gpus_and_a_closed_claim_frees_its_gpu(locks):
    envs = [{gpus.ENV_SLOTS: "3"} for _ in range(3)]
    assert [gpus.claim_gpu(e, wait_s=0) for e in envs] == ["0", "1", "2"]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "2"]
    with pytest.raises(ConfigError, match="no free GPU slot among 3"):
        gpus.claim_gpu({gpus.ENV_SLOTS: "3"}, wait_s=0)
    gpus._held.pop(1).close()  # the job on GPU 1 ends
    assert gpus.claim_gpu({gpus.ENV_SLOTS: "3"}, wait_s=0) == "1"


def test_slots_index_the_visible_gpus_and_nothing_happens_without_several(locks):
    env = {gpus.ENV_SLOTS: "2", "CUDA_VISIBLE_DEVICES": "4,6"}
    assert gpus.claim_gpu(env, wait_s=0) == "4" and env["CUDA_VISIBLE_DEVICES"] == "4"
    assert gpus.claim_gpu({}, wait_s=0) is None
    assert gpus.claim_gpu({gpus.ENV_SLOTS: "1"}, wait_s=0) is None
    slurm_job = {gpus.ENV_SLOTS: "4", "CUDA_VISIBLE_DEVICES": "3"}  # the scheduler already chose
    assert gpus.claim_gpu(slurm_job, wait_s=0) is None and slurm_job["CUDA_VISIBLE_DEVICES"] == "3"
    with pytest.raises(ConfigError, match="CUDA_VISIBLE_DEVICES lists 2 GPUs"):
        gpus.claim_gpu({gpus.ENV_SLOTS: "4", "CUDA_VISIBLE_DEVICES": "0,1"}, wait_s=0)
    hidden = {gpus.ENV_SLOTS: "2", "CUDA_VISIBLE_DEVICES": ""}  # GPUs deliberately hidden stay hidden
    assert gpus.claim_gpu(hidden, wait_s=0) is None and hidden["CUDA_VISIBLE_DEVICES"] == ""
    with pytest.raises(ConfigError, match="expected the number of GPUs"):
        gpus.claim_gpu({gpus.ENV_SLOTS: "all"}, wait_s=0)


def test_locks_name_the_gpu_so_runs_with_different_lists_agree(locks):
    """A run on GPUs 2,3 and a run on all four do not take the same GPU, nor block on each other's."""
    first = {gpus.ENV_SLOTS: "2", "CUDA_VISIBLE_DEVICES": "2,3"}
    assert gpus.claim_gpu(first, wait_s=0) == "2"
    assert sorted(p.name for p in locks.iterdir()) == ["gpu2.lock"]
    everything = [{gpus.ENV_SLOTS: "4"} for _ in range(3)]
    assert [gpus.claim_gpu(e, wait_s=0) for e in everything] == ["0", "1", "3"]


def test_concurrent_commands_see_one_gpu_each(locks, tmp_path):
    """Two `vjepa` processes started together under VJEPA_GPU_SLOTS=2 report different GPUs."""
    code = (
        "import os, sys, time; from vjepa.pipeline.gpus import claim_gpu; claim_gpu(); "
        "print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); time.sleep(1.5)"
    )
    env = {**os.environ, gpus.ENV_SLOTS: "2", gpus.ENV_LOCKS: str(locks)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    seen = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert seen == ["0", "1"]


def test_a_training_on_several_gpus_claims_them_all_or_waits(locks):
    first = {gpus.ENV_SLOTS: "4"}
    assert gpus.claim_gpu(first, wait_s=0, count=2) == "0,1" and first["CUDA_VISIBLE_DEVICES"] == "0,1"
    single = {gpus.ENV_SLOTS: "4"}
    assert gpus.claim_gpu(single, wait_s=0) == "2"
    with pytest.raises(ConfigError, match="no 2 free GPU slots among 4"):
        gpus.claim_gpu({gpus.ENV_SLOTS: "4"}, wait_s=0, count=2)
    assert len(gpus._held) == 3  # the one free slot it took was let go again
    assert gpus.claim_gpu({gpus.ENV_SLOTS: "4"}, wait_s=0) == "3"
    with pytest.raises(ConfigError, match="needs 3 GPUs .* VJEPA_GPU_SLOTS=2"):
        gpus.claim_gpu({gpus.ENV_SLOTS: "2"}, wait_s=0, count=3)
