"""Wall time of one `ScalarLog.snapshot` (collapse monitors of the context tokens, the head's TensorBoard
histograms, throughput) for an MDN at the GPU study's size: profiles/gpu-10min.yaml's model (the paper's
ViT, width 384, predictor 192 x 4), masks and batch (512 images x 4 views), on this machine's CPU.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/snapshot.py [--repeats 3] [--out logs/snapshot.json]

The context tokens and the predictor's conditioning have the shapes of a real step's (masks drawn by the
study's sampler); their values are random, which changes nothing of the cost.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from common import ROOT, config, sized_params, write_json

from vjepa.model.jepa import JEPA
from vjepa.model.masks import MultiBlockMaskSampler
from vjepa.training.train import ScalarLog

PROFILE = ROOT / "profiles" / "gpu-10min.yaml"


def study_tensors(cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """(context V·B×Nc×D, cond V·B×(M·Nt)×C) as one training step of the study gives them."""
    rows = cfg.train.batch_size * cfg.trunk.global_views
    grid = cfg.data.image_size // cfg.model.patch_size
    masks = MultiBlockMaskSampler.from_config(cfg.mask, grid)(rows, torch.Generator().manual_seed(0))
    context = torch.randn(rows, masks.context.shape[1], cfg.model.embed_dim)
    cond = torch.randn(rows, masks.targets.shape[1] * masks.targets.shape[2], cfg.model.pred_dim)
    return context, cond


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="write the timings as JSON here")
    args = p.parse_args()
    cfg = config(sized_params(PROFILE, "default"), "mdn", train__device="cpu")
    torch.manual_seed(0)
    model = JEPA(cfg)
    context, cond = study_tensors(cfg)
    k, d = cfg.head["num_components"], cfg.model.embed_dim
    print(
        f"MDN snapshot at study size: context {tuple(context.shape)}, cond {tuple(cond.shape)}, "
        f"{cond.shape[0] * cond.shape[1] * k * d / 1e6:.0f} M sigma values per step"
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = ScalarLog(Path(tmp) / "tb", fresh=True, resume_path=Path(tmp) / "resume.pt", step=0)
        seconds = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            log.snapshot(25 * (i + 1), model, context, cond, cfg.train.batch_size)
            seconds.append(time.perf_counter() - t0)
            print(f"  snapshot {i + 1}: {seconds[-1]:.2f} s")
        log.close()
    result = {
        "seconds": seconds,
        "best_s": min(seconds),
        "context_shape": list(context.shape),
        "cond_shape": list(cond.shape),
        "threads": torch.get_num_threads(),
    }
    print(f"best of {args.repeats}: {min(seconds):.2f} s")
    write_json(args.out, result)


if __name__ == "__main__":
    main()
