"""What measuring the loss parts' gradients on the encoder costs (`vjepa.model.gradient_share`): ordinary
and measured training steps alternated in one run on synthetic images, their mean times (the two
fastest and slowest of each dropped), and the share of training that a measurement every
`train.log_every` steps adds.

    .venv/bin/python benchmarks/gradient_share.py [--params profiles/tiny-imagenet-cpu.yaml] [--steps 24] [--out F]
"""

from __future__ import annotations

import argparse
import time

import torch

from common import ROOT, config, write_json

from vjepa.core import launch
from vjepa.core.config import load_params
from vjepa.model.jepa import JEPA
from vjepa.model.masks import MultiBlockMaskSampler
from vjepa.training.batch import BatchStream, make_batch, seed_step
from vjepa.training.train import make_optimizer, training_step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--steps", type=int, default=24, help="steps in all, half of them measured")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out")
    args = p.parse_args()
    launch.limit_threads(args.threads)
    cfg = config(load_params(args.params), "deterministic")
    model = JEPA(cfg)
    opt = make_optimizer(model, cfg.train.weight_decay, cfg.train.lr, torch.device("cpu"))
    size, n = cfg.data.image_size, max(4 * cfg.train.batch_size, 64)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    stats = {"mean": [0.5] * 3, "std": [0.25] * 3}
    sampler, gen = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid), torch.Generator()
    stream = BatchStream(n, cfg.train.batch_size, 0)
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(args.steps):
        measure = bool(i % 2)
        seed_step(gen, 0, i)
        batch = make_batch(images, stream.indices(i), cfg, stats, sampler, gen)
        start = time.perf_counter()
        out = training_step(model, model, opt, batch, 0.99, cfg.train.grad_clip, measure=measure)
        times[measure].append(time.perf_counter() - start)
        assert (out.part_norms is not None) == measure
    trim = lambda xs: sorted(xs)[2:-2] if len(xs) > 4 else xs
    plain, measured = (sum(trim(times[m])) / len(trim(times[m])) for m in (False, True))
    every = cfg.train.log_every
    result = {
        "params": args.params,
        "threads": args.threads,
        "step_s": plain,
        "measured_step_s": measured,
        "ratio": measured / plain,
        "log_every": every,
        "added_fraction": (measured - plain) / (every * plain),
    }
    print(
        f"step {1000 * plain:.0f} ms, measured step {1000 * measured:.0f} ms ({result['ratio']:.2f}x); "
        f"one measurement every {every} steps adds {100 * result['added_fraction']:.1f}% to training"
    )
    write_json(args.out, result)


if __name__ == "__main__":
    main()
