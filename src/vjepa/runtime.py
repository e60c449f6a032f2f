"""Device choice, mixed precision, seeding and the library versions recorded with results."""
from __future__ import annotations

import contextlib
import platform
import random
import sys

import numpy as np
import torch

from .errors import ConfigError


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
    """TF32 matmuls on CUDA (bf16 autocast does the rest); nothing to do elsewhere."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def autocast(device: torch.device):
    """bf16 autocast on CUDA only: on CPUs without bf16 units it is ~100x slower than fp32."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def versions() -> dict[str, str]:
    import sklearn

    from . import __version__

    return {"vjepa": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "sklearn": sklearn.__version__, "python": platform.python_version()}


def progress_interval() -> float:
    """Seconds between progress-bar refreshes: live in a terminal, sparse in log files."""
    return 0.1 if sys.stderr.isatty() else 30.0
