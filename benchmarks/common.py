"""What the benchmark scripts share: the package on the path, model sizes, and (from vjepa.training.throughput)
timing and peak FLOP/s."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vjepa.core.config import load_params, resolve, set_dotted  # noqa: E402 (after the path insert)
from vjepa.model.heads import HEADS  # noqa: E402
from vjepa.training.throughput import peak_matmul_flops, seconds_per_call, sync  # noqa: E402, F401 (shared)

ALL_HEADS = list(HEADS)
# The paper's ViT: 64 px, patch 8 (8x8 grid), width 384, depth 10, 8 heads; predictor 192 x 4.
PAPER = {
    "data.image_size": 64,
    "model.patch_size": 8,
    "model.embed_dim": 384,
    "model.depth": 10,
    "model.num_heads": 8,
    "model.pred_dim": 192,
    "model.pred_depth": 4,
    "model.pred_num_heads": 8,
    "head.rnade.hidden_dim": 600,
}


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


def write_json(path: str | None, results: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=2))
        print(f"\nwrote {path}")
