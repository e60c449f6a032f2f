"""What predicting all target blocks in one pass costs in accuracy: joint vs I-JEPA's per-block predictor.

    .venv/bin/python benchmarks/predictor_pass.py [--head deterministic] [--seeds 0 1] [--out logs/predictor_pass.json]

Trains the same head twice per seed on params.yaml's data and budget, once with
`model.predictor_pass: joint` (one pass, block-diagonal mask: the context never sees the
queries) and once with `per_block` (the context repeated per block and attending to that
block's queries), and prints the final validation kNN top-1 and the training time of each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import ROOT, config, sized_params, write_json

from vjepa.data.sources import compute_stats, prepare
from vjepa.training.train import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--head", default="deterministic")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--steps", type=int, default=None, help="training steps (default: params)")
    p.add_argument("--out")
    args = p.parse_args()

    params = sized_params(args.params, "default")
    d = params["data"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare(
            d["source"],
            data / "processed",
            image_size=d["image_size"],
            num_classes=d["num_classes"],
            path=d["path"],
            val_fraction=d["val_fraction"],
            split_seed=d["split_seed"],
        )
        compute_stats(
            data / "processed" / "train.npz", data / "stats.json", subsample=d["stats_subsample"], seed=params["seed"]
        )
        for seed in args.seeds:
            for mode in ("joint", "per_block"):
                overrides = {"model__predictor_pass": mode, "seed": seed, "train__eval_every": 10**6}
                if args.steps:
                    overrides["train__steps"] = args.steps
                cfg = config(params, args.head, **overrides)
                t0 = time.perf_counter()
                out = train(cfg, data, Path(tmp) / f"{mode}-{seed}", fresh=True, progress=False)
                rows.append(
                    {
                        "seed": seed,
                        "predictor_pass": mode,
                        "train_s": time.perf_counter() - t0,
                        "knn_top1": out["history"][-1]["knn_top1"],
                    }
                )
                print(
                    f"seed {seed} {mode:9s} kNN top-1 {rows[-1]['knn_top1']:.4f}  train {rows[-1]['train_s']:.0f} s",
                    flush=True,
                )
    write_json(args.out, {"head": args.head, "runs": rows})


if __name__ == "__main__":
    main()
