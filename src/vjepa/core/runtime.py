"""Device choice, mixed precision and seeding."""

from __future__ import annotations

import contextlib
import ctypes
import random
import sys

import numpy as np
import torch

from vjepa.core.errors import ConfigError


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA, then MPS, then CPU for 'auto'; a requested device that is absent is an error."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if requested == "mps" and not has_mps:
        raise ConfigError("train.device = 'mps' but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(requested)


def configure(device: torch.device) -> None:
    """TF32 matmuls on CUDA (bf16 autocast does the rest); on a CPU, keep freed memory for reuse."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        keep_freed_memory()


def keep_freed_memory() -> bool:
    """Let glibc keep freed activations instead of unmapping them.

    By default glibc serves blocks above a few MiB with mmap and returns them to the system on
    free, so every training step page-faults its activations afresh (measured: ~15% of a
    paper-sized CPU step). Raising the mmap threshold to its maximum (32 MiB on 64-bit) and the
    trim threshold to 1 GiB makes the next step reuse the same memory. No-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) and bool(libc.mallopt(m_trim_threshold, 2**30))
    except (OSError, AttributeError):
        return False


def autocast(device: torch.device):
    """bf16 autocast on CUDA only: on CPUs without bf16 units it is ~100x slower than fp32."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress_interval() -> float:
    """Seconds between progress-bar refreshes: live in a terminal, sparse in log files."""
    return 0.1 if sys.stderr.isatty() else 30.0
