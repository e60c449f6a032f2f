"""One training on 1 vs N processes (DistributedDataParallel): training throughput at a fixed global
batch, and the in-training feature extraction split over the ranks vs rank 0 alone.

    .venv/bin/python benchmarks/ddp.py                              # CPU, gloo: 1 and 2 processes
    .venv/bin/python benchmarks/ddp.py --device cuda --nprocs 1 2 4 8 --size paper --batch 256

Each world size runs in its own `torchrun --standalone` job on the digits (prepared once in a
temporary folder) with the params' model or the paper's ('--size paper'). On a CPU the job's
`--threads` (default: every core) are split between the ranks, so 1 process x 2 threads is set
against 2 processes x 1 thread on the same cores. Reported per world size: seconds per training
step (after warm-up), images/s, the first step's loss (the same for every world size: the global
batch does not depend on it), and the seconds to embed the training and validation images with
the extraction split over the ranks (`embed.extract_features_across_ranks`) and with rank 0 doing
it alone while the others wait (best of --repeats, after one warm-up pass). Speed-ups are ratios
within this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, config, sized_params, write_json


def worker(args) -> None:
    import torch

    from vjepa.core import distributed, launch
    from vjepa.eval.embed import extract_features, extract_features_across_ranks
    from vjepa.model.jepa import JEPA
    from vjepa.model.masks import MultiBlockMaskSampler
    from vjepa.training.batch import BatchStream, make_batch, seed_step
    from vjepa.training.train import TrainingData, data_parallel, make_optimizer, training_step

    launch.limit_threads(launch.rank_threads(args.threads))
    overrides = {"train__batch_size": args.batch, "train__device": args.device}
    cfg = config(sized_params(args.params, args.size), args.head, **overrides)
    world = distributed.start(args.device, "auto")
    device = distributed.device(args.device)
    data = TrainingData.load(cfg, Path(args.data))
    torch.manual_seed(0)
    model = JEPA(cfg).to(device)
    opt = make_optimizer(model, cfg.train.weight_decay, 1e-4, device)
    forward = data_parallel(model, device)
    images, val_images = data.on(device)
    sampler = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)
    stream, gen = BatchStream(len(images), cfg.train.batch_size, 0), torch.Generator()

    def step(i):
        seed_step(gen, 0, i)
        batch = make_batch(images, stream.indices(i), cfg, data.stats, sampler, gen)
        return training_step(forward, model, opt, batch, 0.99, cfg.train.grad_clip)

    first = distributed.mean_over_ranks(step(0).loss.detach()).item()
    for i in range(1, args.warmup):
        step(i)
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    sync()
    distributed.barrier()
    t0 = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        step(i)
    sync()
    distributed.barrier()
    per_step = (time.perf_counter() - t0) / args.steps

    mean, std, size = data.stats["mean"], data.stats["std"], cfg.data.image_size

    def embed(split: bool) -> float:
        distributed.barrier()
        t0 = time.perf_counter()
        for x in (images, val_images):
            if split:
                extract_features_across_ranks(model.encoder, x, mean, std, size, cfg.eval.batch_size)
            elif world.main:
                extract_features(model.encoder, x, mean, std, size, cfg.eval.batch_size)
        sync()
        distributed.barrier()  # the others wait for rank 0, as they would for its evaluation
        return time.perf_counter() - t0

    embed(True)  # warm-up: first-call allocations
    timings = {name: min(embed(name == "split") for _ in range(args.repeats)) for name in ("split", "rank0")}
    if world.main:
        Path(args.out).write_text(
            json.dumps(
                {
                    "processes": world.size,
                    "threads_per_process": torch.get_num_threads(),
                    "backend": world.backend,
                    "seconds_per_step": per_step,
                    "images_per_s": cfg.train.batch_size / per_step,
                    "first_loss": first,
                    "embed_split_s": timings["split"],
                    "embed_rank0_s": timings["rank0"],
                    "embedded_images": len(images) + len(val_images),
                }
            )
        )
    distributed.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--size", choices=["default", "paper"], default="default")
    p.add_argument("--head", default="deterministic")
    p.add_argument("--batch", type=int, default=64, help="global batch (images per step)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads of the whole job")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="timed extractions of each kind (the best counts)")
    p.add_argument("--out", help="JSON file for the results")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    sys.path.insert(0, str(ROOT / "src"))
    from vjepa.data.sources import compute_stats, prepare

    image_size = config(sized_params(args.params, args.size), args.head).data.image_size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare(
            "digits",
            data / "processed",
            image_size=image_size,
            num_classes=10,
            path=None,
            val_fraction=0.2,
            split_seed=0,
        )
        compute_stats(data / "processed" / "train.npz", data / "stats.json")
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "OMP_NUM_THREADS": str(max(1, args.threads // max(args.nprocs))),
        }
        for n in args.nprocs:
            out = Path(tmp) / f"world{n}.json"
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc-per-node={n}",
                __file__,
                "--worker",
                "--data",
                str(data),
                "--out",
                str(out),
            ]
            for key in ("params", "size", "head", "batch", "device", "threads", "steps", "warmup", "repeats"):
                cmd += [f"--{key}", str(getattr(args, key))]
            subprocess.run(cmd, check=True, env=env)
            rows.append(json.loads(out.read_text()))

    base = rows[0]
    print(f"\n{args.head}, {args.size} model, global batch {args.batch}, {args.device}, {args.threads} threads in all")
    print(
        f"{'procs':>5} {'thr/proc':>8} {'s/step':>8} {'img/s':>8} {'speed-up':>8} {'loss@1':>10} "
        f"{'embed split':>11} {'embed rank0':>11}"
    )
    for r in rows:
        print(
            f"{r['processes']:>5} {r['threads_per_process']:>8} {r['seconds_per_step']:>8.3f} "
            f"{r['images_per_s']:>8.1f} {base['seconds_per_step'] / r['seconds_per_step']:>7.2f}x "
            f"{r['first_loss']:>10.6f} {r['embed_split_s']:>10.2f}s {r['embed_rank0_s']:>10.2f}s"
        )
    write_json(
        args.out,
        {
            "head": args.head,
            "size": args.size,
            "batch": args.batch,
            "device": args.device,
            "threads": args.threads,
            "runs": rows,
        },
    )


if __name__ == "__main__":
    main()
