"""Figure 6: the multi-block masking policy drawn on real validation images."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from vjepa.core.config import resolve
from vjepa.data.sources import load_split
from vjepa.model.masks import MultiBlockMaskSampler
from vjepa.report.figures.common import grid


def plot(ctx):
    cfg = resolve(ctx.params, None)
    images, _ = load_split(ctx.data_dir / "processed" / "val.npz")
    n = min(ctx.figures["mask_images"], len(images))
    patch = cfg.model.patch_size
    side = cfg.data.image_size // patch
    masks = MultiBlockMaskSampler.from_config(cfg.mask, side)(n, torch.Generator().manual_seed(cfg.seed))
    rows, cols = grid(n, 4)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        overlay = np.zeros((side * side, 4))
        overlay[masks.context[i].numpy()] = (0.0, 0.8, 0.0, 0.35)
        overlay[masks.targets[i].reshape(-1).numpy()] = (0.9, 0.0, 0.0, 0.55)
        overlay = overlay.reshape(side, side, 4).repeat(patch, 0).repeat(patch, 1)
        ax.imshow(images[i])
        ax.imshow(overlay)
        ax.set_title(f"{masks.targets.shape[1]} targets, {masks.context.shape[1]} context", fontsize=7)
    fig.tight_layout()
    return fig
