"""GPU check (a few minutes): the paper-sized model, every head, one table.

    .venv/bin/python benchmarks/gpu_check.py [--batch 128] [--steps 20] [--out logs/gpu_check.json]

On CUDA: bf16 autocast and TF32 as in training; images/s of the real training step,
model FLOP utilisation against this GPU's bf16 square-matmul peak measured in the same
run, and peak GPU memory per head. `--device cpu` runs the same script on the CPU
(fp32; no GPU memory column) to check it before a GPU is at hand.
"""

from __future__ import annotations

import argparse
import time

import torch

from common import ALL_HEADS, ROOT, config, peak_matmul_flops, seconds_per_call, sized_params, write_json
from train_step import Bench, count_flops

from vjepa.core.runtime import configure, pick_device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--heads", nargs="+", default=ALL_HEADS, choices=ALL_HEADS)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model (adds compile time)")
    p.add_argument("--out")
    args = p.parse_args()

    device = pick_device(args.device)
    configure(device)
    t_start = time.perf_counter()
    params = sized_params(args.params, "paper")
    peak = peak_matmul_flops(device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(
        f"{name}: measured {'bf16' if device.type == 'cuda' else 'fp32'} matmul peak "
        f"{peak / 1e12:.3g} TFLOP/s; paper-sized model, batch {args.batch}",
        flush=True,
    )
    rows = {}
    for head in args.heads:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        bench = Bench(config(params, head), args.batch, device, compile=args.compile)
        flops = count_flops(bench, range(100, 103)) if not args.compile else None
        steps = iter(range(args.steps + 3))
        sec = seconds_per_call(lambda: bench.step(next(steps)), device, repeats=args.steps, warmup=3)
        if flops is None:
            flops = count_flops(Bench(config(params, head), args.batch, device), range(100, 103))
        rows[head] = {
            "images_per_s": args.batch / sec,
            "step_ms": 1e3 * sec,
            "tflops": flops / sec / 1e12,
            "mfu": flops / sec / peak,
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
        }
        r = rows[head]
        mem = f"{r['peak_memory_gb']:8.2f}" if r["peak_memory_gb"] is not None else f"{'-':>8s}"
        print(
            f"{head:14s} {r['images_per_s']:9.0f} img/s {r['step_ms']:8.1f} ms {r['tflops']:7.2f} TFLOP/s "
            f"MFU {r['mfu']:6.1%}  peak mem {mem} GB",
            flush=True,
        )
    results = {
        "device": name,
        "torch": torch.__version__,
        "batch": args.batch,
        "peak_tflops": peak / 1e12,
        "compile": args.compile,
        "heads": rows,
        "seconds": time.perf_counter() - t_start,
    }
    print(f"done in {results['seconds']:.0f} s")
    write_json(args.out, results)


if __name__ == "__main__":
    main()
