"""GPUs of their own for the jobs on a machine with several: a command claims free GPU slots before CUDA starts.

Snakemake's `gpu` resource bounds how many GPU jobs run at once, but it does not say which GPU a
job gets; without more, every job lands on GPU 0. With `VJEPA_GPU_SLOTS=N` in the environment
(the pipeline sets it for its GPU rules when run with `--resources gpu=N`, N > 1), a command takes
an exclusive lock on one of N GPUs' lock files (a training with `launch.nproc: K`, on K of them) and
sets `CUDA_VISIBLE_DEVICES` to those GPUs alone. The lock is the open file: it goes when the process
ends, however it ends (a training that becomes torchrun keeps it: `keep_claims_across_exec`). A GPU
list already in `CUDA_VISIBLE_DEVICES` (a SLURM job's, say) is what the slots index.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

from vjepa.core.errors import ConfigError

# the commands that run on CUDA when there is one: the pipeline gives their stages a GPU
GPU_COMMANDS = frozenset({"train", "embed", "evaluate", "reference", "ablate", "samples"})
ENV_SLOTS = "VJEPA_GPU_SLOTS"
ENV_LOCKS = "VJEPA_GPU_LOCK_DIR"
_held: list = []  # open lock files of this process (closing one frees its slot)


def lock_dir() -> Path:
    return Path(os.environ.get(ENV_LOCKS) or Path(tempfile.gettempdir()) / f"vjepa-gpu-slots-{os.getuid()}")


def try_claim(gpus: list[str], folder: Path) -> str | None:
    """The first of `gpus` whose lock is free (now held by this process), or None. A lock is named
    after the GPU itself, so runs that see different GPU lists still agree on who holds which."""
    folder.mkdir(parents=True, exist_ok=True)
    for gpu in gpus:
        f = open(folder / f"gpu{gpu}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        _held.append(f)
        return gpu
    return None


def claim_gpu(environ=os.environ, wait_s: float = 3600.0, poll_s: float = 0.5, count: int = 1) -> str | None:
    """With VJEPA_GPU_SLOTS = N > 1: claim `count` slots (waiting for them to free up) and restrict
    CUDA_VISIBLE_DEVICES to those GPUs; returns what it set, or None when there is nothing to do."""
    value = environ.get(ENV_SLOTS, "")
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"{ENV_SLOTS}={value!r}: expected the number of GPUs, e.g. {ENV_SLOTS}=4") from None
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    visible = [d.strip() for d in (listed or "").split(",") if d.strip()]
    if n <= 1 or len(visible) == 1 or (listed is not None and not visible):  # one GPU, or GPUs hidden
        return None
    if visible and n > len(visible):
        raise ConfigError(
            f"{ENV_SLOTS}={n} but CUDA_VISIBLE_DEVICES lists {len(visible)} GPUs "
            f"({','.join(visible)}); run with --resources gpu={len(visible)}"
        )
    if count > n:
        raise ConfigError(
            f"a job needs {count} GPUs (launch.nproc) but {ENV_SLOTS}={n}; "
            f"run with --resources gpu={count} or more, or lower launch.nproc"
        )
    slots, deadline = visible[:n] if visible else [str(i) for i in range(n)], time.monotonic() + wait_s
    while True:  # all `count` at once or none, so that two jobs cannot each hold part of what they need
        gpus = []
        while len(gpus) < count and (gpu := try_claim([g for g in slots if g not in gpus], lock_dir())) is not None:
            gpus.append(gpu)
        if len(gpus) == count:
            break
        for _ in gpus:
            _held.pop().close()
        if time.monotonic() > deadline:
            wanted = f"{count} free GPU slots" if count > 1 else "free GPU slot"
            raise ConfigError(
                f"no {wanted} among {n} after {wait_s:.0f} s (locks in {lock_dir()}); is another pipeline using them?"
            )
        time.sleep(poll_s)
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return environ["CUDA_VISIBLE_DEVICES"]


def keep_claims_across_exec() -> None:
    """Let the claimed slots' locks survive `os.exec*` (Python opens files non-inheritable)."""
    for f in _held:
        os.set_inheritable(f.fileno(), True)
