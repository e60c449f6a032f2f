"""How `vjepa train` starts the processes of one training: `launch:` in params.

- `nproc: 1, nnodes: 1`: this process trains.
- `nproc: N > 1` (one node): `torchrun --standalone` with N processes on this machine, one per GPU
  (on a CPU: gloo, each with its share of `--threads`).
- `nnodes: M > 1`: inside a SLURM allocation of M nodes (profiles/slurm), `srun` starts one
  torchrun per node, and they meet at a c10d rendezvous on this node, the allocation's first.

The `vjepa train` process replaces itself with that launcher (same process id, so a signal from
Snakemake or SLURM reaches it, and torchrun passes it on to every rank). Under torchrun already
(RANK, WORLD_SIZE, ... set, as by `torchrun -m vjepa train`), nothing is launched: the environment
decides. The checks that can fail are made here, before any process starts.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys

from vjepa.core.errors import ConfigError

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


def launched(environ=os.environ) -> bool:
    """Whether torchrun (or an equivalent launcher) started this process as one rank of several."""
    return all(k in environ for k in TORCHRUN_ENV)


def is_main_rank(environ=os.environ) -> bool:
    """Rank 0 of a distributed run, or a process that runs alone."""
    return environ.get("RANK", "0") == "0"


def resolve_backend(backend: str, cuda: bool) -> str:
    """`launch.backend` for a run on CUDA or not: auto is NCCL on CUDA, gloo elsewhere."""
    if backend == "auto":
        return "nccl" if cuda else "gloo"
    if backend == "nccl" and not cuda:
        raise ConfigError(
            "launch.backend = nccl needs CUDA GPUs, but this run is on the CPU; "
            "use launch.backend: auto (gloo on the CPU) or gloo"
        )
    return backend


def launcher(
    launch: dict, argv: list[str], device_request: str, threads: int | None, environ=os.environ
) -> list[str] | None:
    """The command line that runs `vjepa <argv>` as the training `launch` describes, or None when
    this process should train itself."""
    nproc, nnodes = launch["nproc"], launch["nnodes"]
    if launched(environ) or nproc * nnodes == 1:
        return None
    cuda = on_cuda(device_request)
    if cuda:
        check_gpu_count(nproc, environ)
    resolve_backend(launch["backend"], cuda)
    module = [f"--nproc-per-node={nproc}", "-m", "vjepa", *argv]
    if nnodes == 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", *module]
    return _srun(nnodes, nproc, cuda, threads, environ) + [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={nnodes}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={socket.gethostname()}:{_free_port()}",
        f"--rdzv-id=vjepa-{environ['SLURM_JOB_ID']}",
        *module,
    ]


def _srun(nnodes: int, nproc: int, cuda: bool, threads: int | None, environ) -> list[str]:
    """One task per node of the allocation, with the node's GPUs and CPUs."""
    if not environ.get("SLURM_JOB_ID"):
        raise ConfigError(
            f"launch.nnodes = {nnodes} needs a SLURM allocation of {nnodes} nodes (SLURM_JOB_ID is "
            "not set): run the pipeline with --profile profiles/slurm, or inside salloc/sbatch "
            f"--nodes {nnodes}; elsewhere start torchrun on each node yourself"
        )
    given = environ.get("SLURM_NNODES") or environ.get("SLURM_JOB_NUM_NODES")
    if given and int(given) != nnodes:
        raise ConfigError(
            f"launch.nnodes = {nnodes} but this SLURM allocation has {given} nodes; "
            f"allocate {nnodes} (sbatch --nodes {nnodes}) or set launch.nnodes: {given}"
        )
    srun = shutil.which("srun", path=environ.get("PATH"))
    if srun is None:
        raise ConfigError("launch.nnodes > 1 needs SLURM's srun on the PATH, and it is not there")
    cmd = [srun, f"--nodes={nnodes}", f"--ntasks={nnodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    if cuda:
        cmd.append(f"--gres=gpu:{nproc}")
    if threads:
        cmd.append(f"--cpus-per-task={threads}")
    return cmd


def rank_threads(threads: int | None, environ=os.environ) -> int | None:
    """A rank's share of the job's `--threads` (each node's processes split that node's threads)."""
    if threads is None or not launched(environ):
        return threads
    return max(1, threads // int(environ["LOCAL_WORLD_SIZE"]))


def limit_threads(n: int) -> None:
    """Every thread pool of this process to `n` threads: PyTorch's, and the BLAS and OpenMP pools of
    NumPy, SciPy and scikit-learn. Those take every core by default; beside the other jobs of a
    pipeline they then spin against each other (a Gaussian-mixture fit of the distribution scores
    ran ~20x slower so). The environment covers the libraries loaded from now on (PyTorch reads
    OMP_NUM_THREADS), threadpoolctl those already loaded."""
    from threadpoolctl import threadpool_limits

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    threadpool_limits(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def environment(launch: dict, threads: int | None, environ=os.environ) -> dict:
    """The launcher's environment: OpenMP's threads set to each rank's share (torchrun would
    otherwise set 1 and warn)."""
    env = dict(environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(max(1, threads // launch["nproc"]))
    return env


def check_gpu_count(nproc: int, environ=os.environ) -> None:
    """One process per GPU: refuse more processes per node than the GPUs this node shows."""
    import torch

    visible = torch.cuda.device_count()
    if nproc > visible:
        raise ConfigError(
            f"launch.nproc = {nproc} but {visible} GPU{'s' if visible != 1 else ''} visible"
            f"{_listed(environ)}; lower launch.nproc (torchrun: --nproc-per-node) to at most "
            f"{visible} (one process per GPU)"
        )


def on_cuda(device_request: str) -> bool:
    """Whether `train.device` puts the run on CUDA on this machine."""
    if device_request == "cuda":
        return True
    if device_request != "auto":
        return False
    import torch

    return torch.cuda.is_available()


def _listed(environ) -> str:
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    return f" (CUDA_VISIBLE_DEVICES={listed})" if listed is not None else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]
