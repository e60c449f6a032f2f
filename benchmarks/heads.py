"""Per-head cost relative to the deterministic head: a training step, and drawing 1 and 64 samples per token.

    .venv/bin/python benchmarks/heads.py                       # default (params.yaml) and paper-sized model
    .venv/bin/python benchmarks/heads.py --sizes default --steps 20 --heads deterministic diffusion

Every head's real training step (`train_step.Bench`: the same random uint8 images, crops
and masks for every head) is timed with the backbone of its config; "paper" is the paper's ViT
(64 px, patch 8, width 384, depth 10, 8 heads, predictor 192 x 4) at a smaller batch. Prints a table
and, with --out, writes JSON.
Runs on CUDA when available (bf16 autocast, as in training), else on the CPU in fp32.
"""

from __future__ import annotations

import argparse

import torch

from common import ALL_HEADS, ROOT, config, seconds_per_call, sized_params, write_json
from train_step import Bench

from vjepa.core.runtime import autocast, configure, pick_device

SAMPLE_TOKENS = 64  # target tokens whose draws are timed


def time_head(params: dict, head: str, batch: int, steps: int, device, draws: list[int]) -> dict:
    bench = Bench(config(params, head), batch, device)
    it = iter(range(steps + 1))
    row = {"step_ms": 1e3 * seconds_per_call(lambda: bench.step(next(it)), device, repeats=steps)}
    model, batch = bench.model, bench.batch(0)
    x, masks = batch.views, batch.masks
    model.eval()
    with torch.no_grad(), autocast(device):
        cond, _ = model.conditioning(x, masks)
        cond = cond.reshape(1, -1, cond.shape[-1])[:, :SAMPLE_TOKENS]
        modes = {"": {}}
        if head == "diffusion":  # the 25-step fast mode beside the default DDIM steps
            modes = {"": {}, "fast_": {"steps": model.head.fast_sample_steps}}
        for prefix, kw in modes.items():
            for n in draws:
                sec = seconds_per_call(lambda: model.head.sample(cond, n, **kw), device, repeats=1)
                row[f"{prefix}sample{n}_us_per_token"] = 1e6 * sec / cond.shape[1]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--sizes", nargs="+", default=["default", "paper"], choices=["default", "paper"])
    p.add_argument("--heads", nargs="+", default=ALL_HEADS, choices=ALL_HEADS)
    p.add_argument("--steps", type=int, default=10, help="timed training steps per head")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: params for 'default', 32 for 'paper')")
    p.add_argument("--draws", nargs="+", type=int, default=[1, 64], help="samples per token to time")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args()

    device = pick_device("auto")
    configure(device)
    results = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(), "sizes": {}}
    for size in args.sizes:
        params = sized_params(args.params, size)
        batch = args.batch or (params["train"]["batch_size"] if size == "default" else 32)
        rows = {}
        for head in args.heads:
            rows[head] = time_head(params, head, batch, args.steps, device, args.draws)
            print(f"  {size:8s} {head:14s} step {rows[head]['step_ms']:9.1f} ms", flush=True)
        ref = rows.get("deterministic")
        if ref:
            for r in rows.values():
                r["step_vs_deterministic"] = r["step_ms"] / ref["step_ms"]
                for n in args.draws:
                    r[f"sample{n}_vs_deterministic"] = r[f"sample{n}_us_per_token"] / ref[f"sample{n}_us_per_token"]
        results["sizes"][size] = {"batch": batch, "heads": rows}

    print(
        f"\ndevice {results['device']}, {results['threads']} threads; sampling: us per token for n draws "
        f"of each of {SAMPLE_TOKENS} tokens"
    )
    for size, block in results["sizes"].items():
        print(f"\n{size} model, batch {block['batch']}")
        cols = "".join(f" {'n=' + str(n) + ' us':>12s} {'x det':>7s}" for n in args.draws)
        print(f"{'head':18s} {'step ms':>9s} {'x det':>6s}{cols}")
        for head, r in block["heads"].items():
            line = f"{head:18s} {r['step_ms']:9.1f} {r.get('step_vs_deterministic', float('nan')):6.2f}"
            line += "".join(
                f" {r[f'sample{n}_us_per_token']:12.1f} {r.get(f'sample{n}_vs_deterministic', float('nan')):7.0f}"
                for n in args.draws
            )
            print(line)
            if "fast_sample1_us_per_token" in r:
                print(
                    f"{'  (25-step DDIM)':18s} {'':16s}"
                    + "".join(f" {r[f'fast_sample{n}_us_per_token']:12.1f} {'':7s}" for n in args.draws)
                )
    write_json(args.out, results)


if __name__ == "__main__":
    main()
