"""Data path: images/s of preparing training batches (views, masks) against the training step.

    .venv/bin/python benchmarks/data_path.py [--batch 128] [--out logs/data_path.json]

Times `vjepa.training.batch.make_batch` (the exact call the training loop makes: view and mask
parameters from the CPU generator, one batched warp and colour jitter over uint8 images on the
training device, masks as index tensors) and the default model's full training step in
the same run, and prints their ratio: the data path must never be what the step waits on.
"""

from __future__ import annotations

import argparse

import torch

from common import ROOT, config, seconds_per_call, sized_params, write_json
from train_step import Bench

from vjepa.core.runtime import configure, pick_device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--batch", type=int, default=None, help="batch size (default: params)")
    p.add_argument("--sizes", nargs="+", default=["default", "paper"], choices=["default", "paper"])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out")
    args = p.parse_args()

    device = pick_device("auto")
    configure(device)
    results = {"device": str(device), "threads": torch.get_num_threads(), "sizes": {}}
    for size in args.sizes:
        params = sized_params(args.params, size)
        batch = args.batch or params["train"]["batch_size"]
        bench = Bench(config(params, "deterministic"), batch, device)
        it = iter(range(10**9))
        data_s = seconds_per_call(lambda: bench.batch(next(it)), device, repeats=args.repeats)
        step_s = seconds_per_call(lambda: bench.step(next(it)), device, repeats=max(2, args.repeats // 5))
        row = {
            "batch": batch,
            "data_images_per_s": batch / data_s,
            "step_images_per_s": batch / step_s,
            "ratio": step_s / data_s,
        }
        results["sizes"][size] = row
        print(
            f"{size:8s} batch {batch}: data path {row['data_images_per_s']:10.0f} img/s   training step "
            f"{row['step_images_per_s']:8.1f} img/s   data path is {row['ratio']:.0f}x faster",
            flush=True,
        )
    write_json(args.out, results)


if __name__ == "__main__":
    main()
