"""Timing on the training device: wall time per call (synchronised on CUDA) and the machine's own
matmul peak, against which model FLOP utilisation is reported (`scripts/gpu_study.sh`, `benchmarks/`)."""

from __future__ import annotations

import time

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds_per_call(fn, device: torch.device, *, repeats: int, warmup: int = 1) -> float:
    """Mean wall time of fn() over `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeats


def peak_matmul_flops(
    device: torch.device, dtype: torch.dtype | None = None, n: int | None = None, seconds: float = 1.0
) -> float:
    """The machine's own square-matmul FLOP/s (best of several timed bursts): fp32 on CPU, bf16 on CUDA."""
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    per_call = seconds_per_call(lambda: a @ b, device, repeats=1, warmup=2)
    reps = max(1, int(seconds / 5 / per_call))
    best = min(seconds_per_call(lambda: a @ b, device, repeats=reps, warmup=0) for _ in range(5))
    return 2 * n**3 / best
