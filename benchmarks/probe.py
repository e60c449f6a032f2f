"""Linear probe: wall time of vjepa.eval.probe.linear_probe on synthetic class-structured features.

    .venv/bin/python benchmarks/probe.py                    # 50,000 train x 10,000 val x 384 features, 100 classes
    .venv/bin/python benchmarks/probe.py --n-train 1437 --n-val 360 --dim 64 --classes 10

The features are the kNN benchmark's (benchmarks/knn.py: noisy class clusters, the same
seed), so the two evaluations can be read side by side. One untimed call on a small slice
warms torch up first; then one full call is timed. Prints one JSON object on stdout
(and, with --out, writes it to a file too).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from knn import features  # also puts src/ on the path (via common)

from vjepa.core import launch
from vjepa.eval.probe import linear_probe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-val", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args()

    launch.limit_threads(args.threads)
    xt, yt, xv, yv = features(args.n_train, args.n_val, args.dim, args.classes)
    kw = dict(num_classes=args.classes, steps=args.steps, weight_decay=args.weight_decay)
    linear_probe(xt[:256], yt[:256], xv[:64], yv[:64], **{**kw, "steps": 2})  # warm-up, untimed
    t0 = time.perf_counter()
    result = linear_probe(xt, yt, xv, yv, **kw)
    seconds = time.perf_counter() - t0
    out = {
        "n_train": args.n_train,
        "n_val": args.n_val,
        "dim": args.dim,
        "classes": args.classes,
        "max_steps": args.steps,
        "weight_decay": args.weight_decay,
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        **result,
    }
    print(json.dumps(out))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
