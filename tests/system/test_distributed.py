"""Distributed training on the CPU (gloo): a 2-process step is the single-process step, runs resume
across world sizes, a signal to one rank stops every rank at one checkpoint, and bad launches fail
in one line before any work."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from vjepa.core import distributed, launch
from vjepa.core.config import validate
from vjepa.core.errors import ConfigError
from vjepa.data.sources import load_data_stats, load_split
from vjepa.eval.embed import extract_features, images_to_tensor
from vjepa.model import checkpoint
from vjepa.model.jepa import param_groups

from conftest import ROOT, tiny, write_params

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
ENV.pop("CUDA_VISIBLE_DEVICES", None)


def vjepa(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "vjepa", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


# Runs `vjepa` (argv after the first '--') with vjepa.training.train.make_batch wrapped: on rank RANK, at call
# CALL (step CALL), the process sends itself SIGNAL. Started plainly or by torchrun.
HOOK = textwrap.dedent("""
    import os, signal, sys
    import vjepa.training.train as t
    from vjepa.cli import main
    rank, call, sig = int(sys.argv[1]), int(sys.argv[2]), getattr(signal, sys.argv[3])
    real, calls = t.make_batch, [0]
    def hooked(*a, **k):
        calls[0] += 1
        if calls[0] == call and int(os.environ.get("RANK", 0)) == rank:
            os.kill(os.getpid(), sig)
        return real(*a, **k)
    t.make_batch = hooked
    sys.exit(main(sys.argv[5:]))
""")


def hooked(tmp: Path, nproc: int, rank: int, call: int, sig: str, args: list[str]) -> subprocess.CompletedProcess:
    script = tmp / "hooked.py"
    script.write_text(HOOK)
    start = (
        [sys.executable]
        if nproc == 1
        else [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    )
    return subprocess.run(
        [*start, str(script), str(rank), str(call), sig, "--", *args],
        cwd=tmp,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory, default_params):
    """Digits at 16 px prepared once; params files for 1 and 2 processes. The trunk has SIGReg on, so
    that every batch statistic (standardisation, covariance, SIGReg) is gathered across ranks."""
    root = tmp_path_factory.mktemp("ddp")
    p = tiny(copy.deepcopy(default_params))
    p["trunk"]["sigreg_weight"] = 0.05
    p["train"].update(steps=20, warmup_steps=2, log_every=5, eval_every=10, ckpt_every=10)
    write_params(root / "params.yaml", p)
    vjepa("prepare", "--quiet", cwd=root)
    vjepa("stats", cwd=root)
    return root


def run_dir(root: Path, results: str, head: str) -> Path:
    return root / results / "heads" / head / "seed0"


def gradients(state: dict, model) -> list[torch.Tensor]:
    """Each trainable parameter's (all-reduced) gradient of the first step, read back from AdamW's first
    moment after one step (exp_avg = (1 - beta1) g), in param_groups order."""
    order = [p for g in param_groups(model, 0.0) for p in g["params"]]
    moments = state["optimizer"]["state"]
    return [moments[i]["exp_avg"] / 0.1 for i in range(len(order))], order


def features(root: Path, ckpt: Path) -> torch.Tensor:
    _, cfg, model = checkpoint.load_model(ckpt)
    images, _ = load_split(root / "data/processed/val.npz", 10)
    stats = load_data_stats(root / "data")
    return extract_features(
        model.encoder, images_to_tensor(images, torch.device("cpu")), stats["mean"], stats["std"], cfg.data.image_size
    )


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / a.norm())


@pytest.mark.slow
@pytest.mark.parametrize("head", ["deterministic", "flow", "diffusion"])  # flow: ActNorm; diffusion: noise
def test_one_two_process_step_is_the_single_process_step(project, head):
    one = [
        "--set",
        "train.steps=1",
        "--set",
        "train.warmup_steps=0",
        "--set",
        "train.log_every=1",
        "--set",
        "train.eval_every=0",
        "--head",
        head,
        "--quiet",
        "--threads",
        "2",
    ]
    vjepa("train", *one, "--results-dir", "step1", cwd=project)
    done = vjepa("train", *one, "--set", "launch.nproc=2", "--results-dir", "step2", cwd=project)
    assert "torch.distributed.run" in done.stderr and "--nproc-per-node=2" in done.stderr  # vjepa train launched it
    a = checkpoint.load(run_dir(project, "step1", head) / "checkpoint.pt")
    b = checkpoint.load(run_dir(project, "step2", head) / "checkpoint.pt")
    assert b["curve"][0]["loss"] == pytest.approx(a["curve"][0]["loss"], rel=1e-5)
    _, _, model = checkpoint.load_model(run_dir(project, "step1", head) / "checkpoint.pt")
    (ga, order), (gb, _) = gradients(a, model), gradients(b, model)
    flat = lambda gs: torch.cat([g.flatten() for g in gs])
    assert rel(flat(ga), flat(gb)) < 1e-5  # DDP's averaged gradient is the global batch's
    # AdamW's first step moves every weight by about lr * sign(g); a weight whose gradient is
    # rounding noise in exact arithmetic zero (attention key biases, the projector's last bias under
    # centred terms, ActNorm's biases right after their initialisation) moves either way, so the
    # weights are compared where the gradient is well above that noise (or exactly zero on both).
    names = {id(p): n for n, p in model.named_parameters()}
    scale = flat(ga).square().mean().sqrt()
    compared = 0
    for g, h, p in zip(ga, gb, order):
        keep = (g.abs() > 1e-3 * scale) | ((g == 0) & (h == 0))  # exact zeros: behind zero-initialised layers
        wa, wb = a["model"][names[id(p)]][keep], b["model"][names[id(p)]][keep]
        torch.testing.assert_close(wb, wa, rtol=1e-5, atol=1e-7, msg=names[id(p)])
        compared += int(keep.sum())
    assert compared > 0.9 * flat(ga).numel()
    for k in a["model"]:  # the EMA teacher and every buffer (ActNorm's flags) agree too
        if not k.startswith(("encoder.", "predictor.", "head.", "cross_view.")):
            torch.testing.assert_close(b["model"][k], a["model"][k], rtol=1e-5, atol=1e-6, msg=k)
    assert (
        rel(
            features(project, run_dir(project, "step1", head) / "checkpoint.pt"),
            features(project, run_dir(project, "step2", head) / "checkpoint.pt"),
        )
        < 1e-5
    )


@pytest.fixture(scope="module")
def uninterrupted(project):
    """The 20-step, 2-process run that the interrupted ones are held against."""
    args = ["train", "--head", "deterministic", "--quiet", "--threads", "2", "--results-dir", "whole"]
    vjepa(*args, "--set", "launch.nproc=2", cwd=project)
    return run_dir(project, "whole", "deterministic")


def assert_same_training(project: Path, reference: Path, run: Path) -> None:
    """Within fp32 tolerance: the loss curve, the val kNN history (both at every step they are due) and
    the encoder's features."""
    a, b = checkpoint.load(reference / "checkpoint.pt"), checkpoint.load(run / "checkpoint.pt")
    assert b["step"] == a["step"] == 20 and not (run / "resume.pt").exists()
    assert [r["step"] for r in b["curve"]] == [r["step"] for r in a["curve"]] == [5, 10, 15, 20]  # log_every 5
    for x, y in zip(a["curve"], b["curve"]):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4)
    assert [r["step"] for r in b["history"]] == [r["step"] for r in a["history"]] == [10, 20]  # eval_every 10
    for x, y in zip(a["history"], b["history"]):
        assert y["knn_top1"] == pytest.approx(x["knn_top1"], abs=0.01)  # a few of 360 images may swap
    assert rel(features(project, reference / "checkpoint.pt"), features(project, run / "checkpoint.pt")) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("before, after", [(2, 1), (1, 2)])
def test_a_run_killed_after_its_checkpoint_resumes_with_another_number_of_processes(
    project, uninterrupted, before, after
):
    results = f"killed{before}to{after}"
    args = ["train", "--head", "deterministic", "--quiet", "--threads", "2", "--results-dir", results]
    done = hooked(project, before, rank=before - 1, call=13, sig="SIGKILL", args=args)  # the last rank dies in step 13
    assert done.returncode != 0
    out = run_dir(project, results, "deterministic")
    assert checkpoint.load(out / "resume.pt")["step"] == 10 and not (out / "checkpoint.pt").exists()
    vjepa(*args, "--set", f"launch.nproc={after}", cwd=project)
    assert_same_training(project, uninterrupted, out)


@pytest.mark.slow
def test_a_signal_to_one_rank_stops_every_rank_at_one_checkpoint(project, uninterrupted):
    args = ["train", "--head", "deterministic", "--quiet", "--threads", "2", "--results-dir", "stopped"]
    done = hooked(project, 2, rank=1, call=13, sig="SIGTERM", args=args)  # rank 1 alone is told to stop
    assert done.returncode != 0
    out = run_dir(project, "stopped", "deterministic")
    assert checkpoint.load(out / "resume.pt")["step"] == 13  # both ranks ended that step, rank 0 saved it
    assert done.stdout.count("interrupted: saved step 13") + done.stderr.count("interrupted: saved step 13") == 1
    vjepa(*args, "--set", "launch.nproc=2", cwd=project)
    assert_same_training(project, uninterrupted, out)


@pytest.mark.slow
def test_embed_under_torchrun_shards_the_images_and_writes_once(project, uninterrupted):
    one = vjepa(
        "embed", "--head", "deterministic", "--results-dir", "whole", "--out", "one.npz", "--quiet", cwd=project
    )
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "vjepa",
            "embed",
            "--head",
            "deterministic",
            "--results-dir",
            "whole",
            "--out",
            "two.npz",
            "--quiet",
        ],
        cwd=project,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("embedded") == 1 and one.returncode == 0
    import numpy as np

    a, b = np.load(project / "one.npz"), np.load(project / "two.npz")
    for key in ("train_features", "val_features", "train_labels", "val_labels"):
        assert a[key].shape == b[key].shape and np.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), key


@pytest.mark.slow
def test_bad_launches_fail_in_one_line_before_any_work(project, default_params, monkeypatch):
    def error(*sets):
        done = vjepa(
            "train",
            "--head",
            "deterministic",
            "--quiet",
            *[a for s in sets for a in ("--set", s)],
            "--results-dir",
            "bad",
            cwd=project,
            check=False,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("vjepa: error:"), done.stderr
        assert not (project / "bad").exists()
        return lines[0]

    assert "not divisible by the 3 processes" in error("launch.nproc=3")  # batch 16
    assert "launch.backend = nccl needs CUDA" in error("launch.backend=nccl", "train.device=cpu")
    assert "launch.backend = nccl needs CUDA" in error("launch.nproc=2", "launch.backend=nccl")  # auto: no CUDA here
    assert "launch.nproc = 2 but 0 GPUs visible" in error("launch.nproc=2", "train.device=cuda")
    assert "needs a SLURM allocation" in error("launch.nnodes=2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"launch.nproc = 4 but 2 GPUs visible \(CUDA_VISIBLE_DEVICES=0,1\)"):
        launch.launcher(
            {"nproc": 4, "nnodes": 1, "backend": "auto"}, ["train"], "cuda", None, {"CUDA_VISIBLE_DEVICES": "0,1"}
        )
    with pytest.raises(ConfigError, match="not divisible by the 4 processes"):
        distributed.check_batch(18, 4)  # a batch that torchrun's own world size does not divide
    p = copy.deepcopy(default_params)
    p["head"]["mdn"]["train"] = {"batch_size": 30}
    p["launch"]["nproc"] = 4
    with pytest.raises(ConfigError, match=r"\(head mdn\) train.batch_size = 30 is not divisible by the 4"):
        validate(p)


def test_the_launcher_runs_torchrun_here_or_srun_torchrun_on_every_node_of_a_slurm_allocation(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    spec = {"nproc": 4, "nnodes": 1, "backend": "auto"}
    assert launch.launcher({**spec, "nproc": 1}, ["train"], "cpu", None, {}) is None
    assert (
        launch.launcher(
            spec, ["train"], "cpu", 8, {"RANK": "0", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "4"}
        )
        is None
    )  # a rank already
    local = launch.launcher(spec, ["train", "--head", "mdn"], "cpu", 8, {})
    assert local[1:] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc-per-node=4",
        "-m",
        "vjepa",
        "train",
        "--head",
        "mdn",
    ]
    assert launch.environment(spec, 8, {})["OMP_NUM_THREADS"] == "2"
    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    slurm = {"SLURM_JOB_ID": "77", "SLURM_NNODES": "2", "PATH": str(tmp_path)}
    multi = launch.launcher({**spec, "nnodes": 2}, ["train", "--head", "mdn"], "cuda", 32, slurm)
    assert multi[:7] == [
        str(srun),
        "--nodes=2",
        "--ntasks=2",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",
        "--gres=gpu:4",
        "--cpus-per-task=32",
    ]
    rest = multi[7:]
    assert rest[1:5] == ["-m", "torch.distributed.run", "--nnodes=2", "--rdzv-backend=c10d"]
    assert rest[5].startswith("--rdzv-endpoint=") and rest[6] == "--rdzv-id=vjepa-77"
    assert rest[7:] == ["--nproc-per-node=4", "-m", "vjepa", "train", "--head", "mdn"]
    with pytest.raises(ConfigError, match="launch.nnodes = 3 but this SLURM allocation has 2 nodes"):
        launch.launcher({**spec, "nnodes": 3}, ["train"], "cpu", None, slurm)
    assert launch.rank_threads(8, {"RANK": "1", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}) == 2
    assert launch.rank_threads(8, {}) == 8


def test_a_trunk_without_cross_view_terms_trains_under_ddp(project):
    """Its projector takes no part in the loss; DDP, which needs a gradient for every trained parameter,
    must not see it as trained."""
    sets = [
        "trunk.global_views=1",
        "trunk.invariance_weight=0.0",
        "trunk.covariance_weight=0.0",
        "trunk.sigreg_weight=0.0",
        "train.steps=3",
        "train.eval_every=0",
        "train.warmup_steps=1",
        "launch.nproc=2",
    ]
    vjepa(
        "train",
        "--head",
        "mdn",
        "--quiet",
        *[a for s in sets for a in ("--set", s)],
        "--results-dir",
        "paper",
        cwd=project,
    )
    state = checkpoint.load(run_dir(project, "paper", "mdn") / "checkpoint.pt")
    assert state["step"] == 3 and state["world_size"] == 2


@pytest.mark.slow
def test_the_held_share_and_the_measured_norms_do_not_depend_on_the_number_of_processes(project):
    """trunk.predict_share on 1 and 2 processes: each part's gradient norm is the global batch's (the
    ranks' gradients averaged before the norm), so the scale it sets, and the training, agree."""
    curves = {}
    for nproc in (1, 2):
        sets = [
            "trunk.predict_share=0.3",
            "train.steps=8",
            "train.log_every=2",
            "train.eval_every=0",
            f"launch.nproc={nproc}",
        ]
        vjepa(
            "train",
            "--head",
            "deterministic",
            "--quiet",
            "--threads",
            "2",
            *[a for s in sets for a in ("--set", s)],
            "--results-dir",
            f"share{nproc}",
            cwd=project,
        )
        curves[nproc] = checkpoint.load(run_dir(project, f"share{nproc}", "deterministic") / "checkpoint.pt")["curve"]
    assert len(curves[1]) == len(curves[2]) == 4
    for a, b in zip(curves[1], curves[2]):
        for key in ("loss", "enc_grad_predict", "enc_grad_inv", "enc_grad_cov", "predict_scale"):
            assert b[key] == pytest.approx(a[key], rel=1e-3), key
    assert curves[1][-1]["predict_scale"] != 1.0  # the scale moved


# A stand-in for SLURM's srun inside an allocation of --nodes=N, on this one machine: the command
# once per "node", side by side (as srun starts one task on each node).
FAKE_SRUN = """#!/bin/sh
n=1
while [ $# -gt 0 ]; do case "$1" in --nodes=*) n="${1#--nodes=}"; shift;; -*) shift;; *) break;; esac; done
pids=""; i=0
while [ $i -lt $n ]; do SLURM_NODEID=$i "$@" & pids="$pids $!"; i=$((i+1)); done
rc=0; for p in $pids; do wait $p || rc=$?; done; exit $rc
"""


@pytest.mark.slow
def test_two_nodes_of_a_slurm_allocation_meet_at_one_rendezvous(project, uninterrupted, tmp_path):
    """launch.nnodes: 2 inside an allocation: vjepa train runs srun, one torchrun per node, which meet at a
    c10d rendezvous on the first node and train as one 2-rank run (here both 'nodes' are this machine)."""
    (tmp_path / "srun").write_text(FAKE_SRUN)
    (tmp_path / "srun").chmod(0o755)
    env = {**ENV, "PATH": f"{tmp_path}{os.pathsep}{ENV['PATH']}", "SLURM_JOB_ID": "42", "SLURM_NNODES": "2"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vjepa",
            "train",
            "--head",
            "deterministic",
            "--quiet",
            "--threads",
            "2",
            "--set",
            "launch.nnodes=2",
            "--results-dir",
            "nodes",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert f"{tmp_path}/srun --nodes=2 --ntasks=2 --ntasks-per-node=1" in done.stderr
    assert "--nnodes=2 --rdzv-backend=c10d" in done.stderr and "--rdzv-id=vjepa-42" in done.stderr
    assert done.stdout.count("trained deterministic") == 1
    assert checkpoint.load(run_dir(project, "nodes", "deterministic") / "checkpoint.pt")["world_size"] == 2
    assert_same_training(project, uninterrupted, run_dir(project, "nodes", "deterministic"))
