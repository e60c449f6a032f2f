"""One training step's inputs: which images, their augmented views and their masks.

Everything random comes from a CPU generator seeded from (seed, step) alone (`step_seed`),
so a step's batch is the same on any device, after any resume and for any number of ranks.
Views are view-major: row v·B + i of the global batch is view v of image i, and the local
views follow the same order. In a distributed run each rank renders only its contiguous block
of those rows (`distributed.shard`), from parameters and masks drawn for the whole batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from vjepa.core import distributed
from vjepa.core.config import Config
from vjepa.data.augment import render_views, view_params, view_theta
from vjepa.model.masks import Masks, MultiBlockMaskSampler


class BatchStream:
    """Epoch permutations derived from (seed, epoch) alone, so step s always gets the same images."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]


def step_seed(seed: int, step: int) -> int:
    """The seed of one training step's batch generator (the global RNG gets this + 1)."""
    return (seed * 1_000_003 + step) * 2


def seed_step(gen: torch.Generator, seed: int, step: int) -> None:
    """Seed the batch generator and the global RNG (heads' noise, SIGReg's directions) for a step."""
    gen.manual_seed(step_seed(seed, step))
    torch.manual_seed(step_seed(seed, step) + 1)


class Batch(NamedTuple):
    views: torch.Tensor  # (V·B)×3×S×S normalised global views, view-major (this rank's rows of them)
    masks: Masks  # one context/target row per global view
    local: torch.Tensor | None  # (L·B)×3×s×s small views, or None (this rank's rows)
    geometry: torch.Tensor | None = None  # (V·B)×2×3 view-to-image maps of every global view (trunk.target_view: other)


def make_batch(
    images: torch.Tensor,
    idx: torch.Tensor,
    cfg: Config,
    stats: dict,
    sampler: MultiBlockMaskSampler,
    gen: torch.Generator,
) -> Batch:
    """The views and masks of images[idx] from the uint8 dataset on the device: every view's
    parameters and masks drawn from the CPU generator `gen` for the whole batch, then one batched
    warp per view size of this rank's rows."""
    device, t, a = images.device, cfg.trunk, cfg.augment
    b = len(idx)
    # draw, on the CPU generator, for the whole global batch (so every rank draws the same numbers):
    # each global view's crop/flip/rotation/colour, its masks, the local views, and the views' geometry
    params = view_params(b * t.global_views, a, a.crop_scale, gen)
    masks = sampler(b * t.global_views, gen)
    local_params = view_params(b * t.local_views, a, t.local_crop_scale, gen) if t.local_views else None
    geometry = view_theta(params).to(device) if t.target_view == "other" else None  # all ranks' rows
    # keep this rank's block of the view-major rows (row r is view r // b of image idx[r % b])
    rows = torch.arange(b * t.global_views)[distributed.shard(b * t.global_views)]
    masks, params, picks = Masks(*(m[rows] for m in masks)), params[rows], idx[rows % b]
    # to the device without waiting (pinned host memory on CUDA)
    if device.type == "cuda":
        masks, params, picks = Masks(*(m.pin_memory() for m in masks)), params.pin_memory(), picks.pin_memory()
    masks = masks.to(device, non_blocking=True)
    # render: one batched warp + colour + blur of the uint8 images, normalised with the data's stats
    mean, std = stats["mean"], stats["std"]
    views = render_views(images[picks.to(device, non_blocking=True)], params, cfg.data.image_size, mean, std)
    local = None
    if local_params is not None:
        rows = torch.arange(b * t.local_views)[distributed.shard(b * t.local_views)]
        local = render_views(
            images[idx[rows % b].to(device, non_blocking=True)], local_params[rows], t.local_size, mean, std
        )
    return Batch(views, masks, local, geometry)
