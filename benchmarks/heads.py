"""Per-head cost relative to the deterministic head: one training step and one sample per token.

    .venv/bin/python benchmarks/heads.py                       # default (params.yaml) and paper-sized model
    .venv/bin/python benchmarks/heads.py --sizes default --steps 20 --heads deterministic diffusion

Every head is timed on the same random images and masks with the backbone of its
config; "paper" is the paper's ViT (64 px, patch 8, width 384, depth 10, 8 heads,
predictor 192 x 4) at a smaller batch. Prints a table and, with --out, writes JSON.
Runs on CUDA when available (bf16 autocast, as in training), else on the CPU in fp32.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vjepa.config import load_params, resolve, set_dotted  # noqa: E402
from vjepa.jepa import JEPA, param_groups  # noqa: E402
from vjepa.masks import MultiBlockMaskSampler  # noqa: E402
from vjepa.runtime import autocast, configure, pick_device  # noqa: E402

ALL_HEADS = ["deterministic", "mdn", "rnade", "flow", "flow_matching", "diffusion"]
PAPER = {"data.image_size": 64, "model.patch_size": 8, "model.embed_dim": 384, "model.depth": 10,
         "model.num_heads": 8, "model.pred_dim": 192, "model.pred_depth": 4, "model.pred_num_heads": 8,
         "head.rnade.hidden_dim": 600}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_head(params: dict, head: str, batch: int, steps: int, device) -> dict:
    cfg = resolve(params, head)
    torch.manual_seed(0)
    model = JEPA(cfg).to(device).train()
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    sampler = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)
    x = torch.randn(batch, 3, cfg.data.image_size, cfg.data.image_size, device=device)
    masks = sampler(batch, gen).to(device)

    def step():
        with autocast(device):
            loss = model(x, masks)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.update_teacher(0.99)

    step()  # warm-up (allocations, lazy inits such as ActNorm)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    step_ms = 1000 * (time.perf_counter() - t0) / steps

    model.eval()
    with torch.no_grad(), autocast(device):
        cond, _ = model.conditioning(x, masks)
        model.head.sample(cond, 1)
        sync(device)
        t0 = time.perf_counter()
        model.head.sample(cond, 1)
        sync(device)
    tokens = cond.shape[0] * cond.shape[1]
    return {"step_ms": step_ms, "sample_us_per_token": 1e6 * (time.perf_counter() - t0) / tokens}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--sizes", nargs="+", default=["default", "paper"], choices=["default", "paper"])
    p.add_argument("--heads", nargs="+", default=ALL_HEADS, choices=ALL_HEADS)
    p.add_argument("--steps", type=int, default=10, help="timed training steps per head")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: params for 'default', 32 for 'paper')")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args()

    device = pick_device("auto")
    configure(device)
    base = load_params(args.params)
    results = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(), "sizes": {}}
    for size in args.sizes:
        params = json.loads(json.dumps(base))
        if size == "paper":
            for k, v in PAPER.items():
                set_dotted(params, k, v)
        batch = args.batch or (params["train"]["batch_size"] if size == "default" else 32)
        rows = {}
        for head in args.heads:
            rows[head] = time_head(params, head, batch, args.steps, device)
            print(f"  {size:8s} {head:14s} step {rows[head]['step_ms']:9.1f} ms   "
                  f"sample {rows[head]['sample_us_per_token']:9.2f} us/token", flush=True)
        ref = rows.get("deterministic")
        if ref:
            for r in rows.values():
                r["step_vs_deterministic"] = r["step_ms"] / ref["step_ms"]
                r["sample_vs_deterministic"] = r["sample_us_per_token"] / ref["sample_us_per_token"]
        results["sizes"][size] = {"batch": batch, "heads": rows}

    print(f"\ndevice {results['device']}, {results['threads']} threads")
    for size, block in results["sizes"].items():
        print(f"\n{size} model, batch {block['batch']}")
        print(f"{'head':14s} {'step ms':>9s} {'x det':>7s} {'sample us/tok':>14s} {'x det':>8s}")
        for head, r in block["heads"].items():
            print(f"{head:14s} {r['step_ms']:9.1f} {r.get('step_vs_deterministic', float('nan')):7.2f} "
                  f"{r['sample_us_per_token']:14.2f} {r.get('sample_vs_deterministic', float('nan')):8.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
