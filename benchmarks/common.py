"""What the benchmark scripts share: the package on the path, model sizes, timing and peak FLOP/s."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vjepa.config import load_params, resolve, set_dotted  # noqa: E402

ALL_HEADS = ["deterministic", "mdn", "rnade", "flow", "flow_matching", "diffusion"]
# The paper's ViT: 64 px, patch 8 (8x8 grid), width 384, depth 10, 8 heads; predictor 192 x 4.
PAPER = {"data.image_size": 64, "model.patch_size": 8, "model.embed_dim": 384, "model.depth": 10,
         "model.num_heads": 8, "model.pred_dim": 192, "model.pred_depth": 4, "model.pred_num_heads": 8,
         "head.rnade.hidden_dim": 600}


def sized_params(params_file: str | Path, size: str) -> dict:
    """params.yaml as is ('default') or with the paper's model ('paper')."""
    params = load_params(params_file)
    if size == "paper":
        for key, value in PAPER.items():
            set_dotted(params, key, value)
    return params


def config(params: dict, head: str, **overrides):
    """The resolved Config of `head`, with dotted overrides (e.g. model__predictor_pass='per_block')."""
    params = json.loads(json.dumps(params))
    for key, value in overrides.items():
        set_dotted(params, key.replace("__", "."), value)
    return resolve(params, head)


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


def peak_matmul_flops(device: torch.device, dtype: torch.dtype | None = None, n: int | None = None,
                      seconds: float = 1.0) -> float:
    """The machine's own square-matmul FLOP/s (best of several timed bursts): fp32 on CPU, bf16 on CUDA."""
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    per_call = seconds_per_call(lambda: a @ b, device, repeats=1, warmup=2)
    reps = max(1, int(seconds / 5 / per_call))
    best = min(seconds_per_call(lambda: a @ b, device, repeats=reps, warmup=0) for _ in range(5))
    return 2 * n ** 3 / best


def write_json(path: str | None, results: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=2))
        print(f"\nwrote {path}")
