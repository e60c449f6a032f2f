"""Data parallelism over processes: one training (or embedding) as several ranks under `torchrun`.

`vjepa train` joins the process group when torchrun started it (RANK, WORLD_SIZE, ... in the
environment) and runs alone otherwise; every helper here is then the identity, so one code path
serves both. A global batch of `train.batch_size` images is the same whatever the number of ranks:
its views and masks are drawn on every rank from the step's generator, and rank r takes the r-th
contiguous block of its view rows (`shard`). What couples the rows of a batch is computed over the
global batch, inside `batch_scope()` (the training forward) only:

- `gather_rows`: the rows of every rank, concatenated in rank order, with a gradient (the cross-view
  term's and the deterministic head's batch statistics);
- `row_moments`: mean and std over every rank's rows (ActNorm's data-dependent initialisation);
- `draw`: noise drawn for the global batch, this rank's block kept (diffusion, flow matching), so
  the draws do not depend on the number of ranks either.

Gradients: DDP averages them over ranks. A term computed on gathered rows is the same on every
rank, and the backward of `gather_rows` sums its gradient over ranks (world-size times the
gradient of one copy), so after DDP's average every parameter gets exactly the gradient of the
single-process loss. Control flow that must agree (stop requests, skipped steps) goes through
`any_rank` on a CPU (gloo) group, so it needs no device synchronisation under NCCL.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vjepa.core.errors import ConfigError
from vjepa.core.launch import check_gpu_count, launched, on_cuda, resolve_backend
from vjepa.core.runtime import pick_device

TIMEOUT = datetime.timedelta(minutes=30)  # a rank waits this long for the others (rank 0's evaluations)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    backend: str | None = None

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files, logs and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


_world = World()
_control = None  # CPU (gloo) group for agreement flags
_in_batch = False  # inside the training forward: batch statistics span every rank


def world() -> World:
    return _world


def start(device_request: str, backend: str = "auto", environ=os.environ) -> World:
    """Join torchrun's process group: NCCL on CUDA, gloo on the CPU (`backend: auto`). The checks
    that need this machine (GPUs per node, NCCL without CUDA) fail before any work."""
    global _world, _control
    if _world.distributed or not launched(environ):
        return _world
    rank, size = int(environ["RANK"]), int(environ["WORLD_SIZE"])
    local_rank, local_size = int(environ["LOCAL_RANK"]), int(environ["LOCAL_WORLD_SIZE"])
    cuda = on_cuda(device_request)
    if cuda:
        check_gpu_count(local_size, environ)
        torch.cuda.set_device(local_rank)
    backend = resolve_backend(backend, cuda)
    dist.init_process_group(backend, rank=rank, world_size=size, timeout=TIMEOUT)
    _control = dist.new_group(backend="gloo", timeout=TIMEOUT) if backend != "gloo" else dist.group.WORLD
    _world = World(rank, size, local_rank, local_size, backend)
    return _world


def stop() -> None:
    global _world, _control
    if dist.is_available() and dist.is_initialized():  # a torchrun run of one process has a group too
        dist.destroy_process_group()
    _world, _control = World(), None


def device(requested: str) -> torch.device:
    """This rank's device: its own GPU (cuda:LOCAL_RANK) on CUDA."""
    dev = pick_device(requested)
    return torch.device("cuda", _world.local_rank) if dev.type == "cuda" and _world.distributed else dev


def check_batch(batch_size: int, size: int | None = None) -> None:
    size = _world.size if size is None else size
    if batch_size % size:
        raise ConfigError(
            f"train.batch_size = {batch_size} is not divisible by the {size} processes of the run; "
            f"choose a multiple of {size} (each process takes an equal share of every batch)"
        )


def shard(n: int) -> slice:
    """This rank's block of n rows split evenly over the ranks."""
    if n % _world.size:
        raise ValueError(f"{n} rows do not split evenly over {_world.size} ranks")
    per = n // _world.size
    return slice(_world.rank * per, (_world.rank + 1) * per)


def split(n: int, rank: int | None = None) -> slice:
    """A rank's block (default: this one's) of n items when n need not divide evenly (the first
    ranks take one more)."""
    rank = _world.rank if rank is None else rank
    per, extra = divmod(n, _world.size)
    start = rank * per + min(rank, extra)
    return slice(start, start + per + (rank < extra))


@contextlib.contextmanager
def batch_scope():
    """The training forward: inside it, the helpers below act over the global batch."""
    global _in_batch
    previous, _in_batch = _in_batch, _world.distributed
    try:
        yield
    finally:
        _in_batch = previous


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(_world.size)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every rank's copy of the term contributes to this rank's rows
        return grad[shard(grad.shape[0])]


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of x (dim 0), in rank order, with a gradient; x itself outside a batch scope."""
    return _GatherRows.apply(x) if _in_batch else x


@torch.no_grad()
def row_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (biased) std over the rows of x (N×D), across ranks inside a batch scope."""
    if not _in_batch:
        return x.mean(0), x.std(0, unbiased=False)
    x32 = x.float()  # sums and the row count in fp32 (a bf16 count is inexact above 256 rows)
    total = torch.cat([x32.sum(0), torch.tensor([float(x.shape[0])], device=x.device)])
    dist.all_reduce(total)
    mean = total[:-1] / total[-1]
    sq = (x32 - mean).square().sum(0)
    dist.all_reduce(sq)
    return mean.to(x.dtype), (sq / total[-1]).sqrt().to(x.dtype)


def draw(sample, shape: tuple[int, ...], dim: int = 0) -> torch.Tensor:
    """`sample(shape)` (e.g. lambda s: torch.randn(s, device=d)) for the global batch, whose rows
    along `dim` are every rank's in rank order; this rank's block is returned."""
    if not _in_batch:
        return sample(tuple(shape))
    full = list(shape)
    full[dim] *= _world.size
    return sample(tuple(full)).narrow(dim, _world.rank * shape[dim], shape[dim])


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """x averaged over ranks (logged scalars); x itself when alone."""
    if not _world.distributed:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / _world.size


def any_rank(flag: bool) -> bool:
    """True on every rank when it is True on any (stop requests, non-finite steps)."""
    if not _world.distributed:
        return flag
    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_control)
    return bool(t.item())


def broadcast(obj):
    """Rank 0's `obj` on every rank (small Python objects)."""
    if not _world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_control)
    return box[0]


def gather_features(x: torch.Tensor, n: int) -> torch.Tensor:
    """Every rank's `split(n)` block of features (CPU, float), concatenated on every rank."""
    if not _world.distributed:
        return x
    per = -(-n // _world.size)
    padded = torch.zeros(per, *x.shape[1:], dtype=x.dtype)
    padded[: len(x)] = x
    parts = [torch.empty_like(padded) for _ in range(_world.size)]
    dist.all_gather(parts, padded, group=_control)  # CPU tensors: gloo, whatever the main backend
    sizes = [len(range(n)[split(n, r)]) for r in range(_world.size)]
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def barrier() -> None:
    if _world.distributed:
        dist.barrier(group=_control)
