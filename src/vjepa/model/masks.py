"""Multi-block masking (I-JEPA), vectorised over the batch.

Per batch, one target block size and one context block size are drawn (so that
index tensors stack); per image, every block is placed independently. Compared
with the reference collator, placements range over the whole grid (a block can
touch the last row/column), a block may span the full grid, and when images keep
different numbers of context patches the surplus is dropped at random, not by a
raster prefix (which would bias the kept context toward the top-left).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class Masks(NamedTuple):
    context: torch.Tensor  # (B, Nc) sorted patch indices seen by the student
    targets: torch.Tensor  # (B, M, Nt) patch indices of M target blocks, raster order in each block

    def to(self, device, non_blocking: bool = False) -> Masks:
        return Masks(*(m.to(device, non_blocking=non_blocking) for m in self))


class MultiBlockMaskSampler:
    def __init__(
        self,
        grid: int,
        *,
        num_targets: int = 4,
        target_scale=(0.15, 0.2),
        target_aspect=(0.75, 1.5),
        context_scale=(0.85, 1.0),
        min_context: int = 8,
        max_tries: int = 100,
    ):
        self.grid = grid
        self.num_targets = num_targets
        self.target_scale = tuple(target_scale)
        self.target_aspect = tuple(target_aspect)
        self.context_scale = tuple(context_scale)
        self.min_context = min_context
        self.max_tries = max_tries

    @classmethod
    def from_config(cls, mask_cfg, grid: int) -> MultiBlockMaskSampler:
        return cls(
            grid,
            num_targets=mask_cfg.num_targets,
            target_scale=mask_cfg.target_scale,
            target_aspect=mask_cfg.target_aspect,
            context_scale=mask_cfg.context_scale,
            min_context=mask_cfg.min_context,
        )

    def block_size(self, scale, aspect, generator: torch.Generator) -> tuple[int, int]:
        """(h, w) of a block whose area is a uniform fraction of the grid and aspect h/w uniform in range."""
        u = torch.rand(2, generator=generator).tolist()
        s = scale[0] + u[0] * (scale[1] - scale[0])
        ar = aspect[0] + u[1] * (aspect[1] - aspect[0])
        area = s * self.grid * self.grid
        h = min(max(round(math.sqrt(area * ar)), 1), self.grid)
        w = min(max(round(math.sqrt(area / ar)), 1), self.grid)
        return h, w

    def _block_masks(
        self, n: int, k: int, h: int, w: int, generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n×k blocks of size h×w at uniform positions: (tops, lefts, boolean masks n×k×G×G)."""
        g = self.grid
        tops = torch.randint(0, g - h + 1, (n, k), generator=generator)
        lefts = torch.randint(0, g - w + 1, (n, k), generator=generator)
        r = torch.arange(g)
        rows = (r >= tops[..., None]) & (r < tops[..., None] + h)  # n×k×G
        cols = (r >= lefts[..., None]) & (r < lefts[..., None] + w)
        return tops, lefts, rows[..., :, None] & cols[..., None, :]

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> Masks:
        g, m = self.grid, self.num_targets
        th, tw = self.block_size(self.target_scale, self.target_aspect, generator)
        ch, cw = self.block_size(self.context_scale, (1.0, 1.0), generator)

        tops = torch.empty(batch_size, m, dtype=torch.long)
        lefts = torch.empty(batch_size, m, dtype=torch.long)
        context = torch.empty(batch_size, g * g, dtype=torch.bool)
        todo = torch.arange(batch_size)
        for _ in range(self.max_tries):
            t_top, t_left, t_mask = self._block_masks(len(todo), m, th, tw, generator)
            _, _, c_mask = self._block_masks(len(todo), 1, ch, cw, generator)
            keep = (c_mask[:, 0] & ~t_mask.any(dim=1)).flatten(1)  # context minus every target
            ok = keep.sum(1) >= self.min_context
            done = todo[ok]
            tops[done], lefts[done], context[done] = t_top[ok], t_left[ok], keep[ok]
            todo = todo[~ok]
            if len(todo) == 0:
                break
        else:
            raise RuntimeError(
                f"could not leave {self.min_context} context patches beside {m} target blocks of {th}x{tw} "
                f"on a {g}x{g} grid in {self.max_tries} tries; lower mask.num_targets or mask.target_scale"
            )

        # Equalise the context length across the batch by dropping random surplus patches.
        n_keep = int(context.sum(1).min())
        scores = torch.rand(batch_size, g * g, generator=generator).masked_fill(~context, 2.0)
        ctx_idx = scores.argsort(dim=1)[:, :n_keep].sort(dim=1).values

        rows = tops[..., None] + torch.arange(th)  # B×M×th
        cols = lefts[..., None] + torch.arange(tw)  # B×M×tw
        tgt_idx = (rows[..., :, None] * g + cols[..., None, :]).flatten(2)
        return Masks(context=ctx_idx, targets=tgt_idx)
