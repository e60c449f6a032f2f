"""What the distribution figures plot, computed once per head: draws and teacher targets.

`results/heads/HEAD/samples.npz` holds, for the first `figures.batch_images` validation
images (fixed masks): the teacher's target tokens, one draw and the point prediction per
token; `figures.num_samples` draws of the first target token; and for a mixture head its
component weights, means and σ. Figures only read this file, so replotting never samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vjepa.core.io import write_npz
from vjepa.core.runtime import pick_device
from vjepa.data.sources import load_data_stats, load_split
from vjepa.eval.head_metrics import held_out_batches
from vjepa.model import checkpoint

DRAW_CHUNK = 512  # draws of the one token per call (bounds memory for iterative samplers)


@torch.no_grad()
def draw_samples(
    ckpt_path,
    data_dir,
    out_path,
    *,
    num_samples: int,
    batch_images: int,
    device: str = "auto",
    seed: int = 0,
    expect=None,
) -> dict:
    state, cfg, model = checkpoint.load_model(ckpt_path, expect)
    model.to(pick_device(device)).eval()
    data_dir = Path(data_dir)
    images, _ = load_split(data_dir / "processed" / "val.npz")
    cond, target = next(
        held_out_batches(model, images[:batch_images], load_data_stats(data_dir), cfg, batch_size=batch_images)
    )
    torch.manual_seed(seed)
    head = model.head
    one = cond[:1, :1]  # the first target token of the first image
    draws = torch.cat(
        [
            head.sample(one, min(DRAW_CHUNK, num_samples - i)).reshape(-1, target.shape[-1])
            for i in range(0, num_samples, DRAW_CHUNK)
        ]
    )
    arrays = {
        "targets": target.reshape(-1, target.shape[-1]).float().cpu().numpy(),
        "batch_draws": head.sample(cond, 1)[0].reshape(-1, target.shape[-1]).float().cpu().numpy(),
        "points": head.point(cond).reshape(-1, target.shape[-1]).float().cpu().numpy(),
        "token_draws": draws.float().cpu().numpy(),
        "token_target": target[0, 0].float().cpu().numpy(),
        "step": np.int64(state["step"]),
    }
    if cfg.head_name == "mdn":  # the mixture components behind the draws
        logits, means, log_sigma = head.mixture(cond)
        k, d = means.shape[-2:]
        arrays["mixture_weights"] = logits.softmax(-1).reshape(-1, k).cpu().numpy()
        arrays["mixture_means"] = means.reshape(-1, k, d).cpu().numpy()
        arrays["mixture_sigmas"] = log_sigma.exp().reshape(-1, k, d).cpu().numpy()
    write_npz(out_path, **arrays)
    return {"tokens": len(arrays["targets"]), "token_draws": len(draws), "mixture": "mixture_means" in arrays}
