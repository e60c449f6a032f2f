"""Vision Transformer encoder and the narrow predictor trunk of I-JEPA.

Both use fixed 2-D sin-cos positions and `scaled_dot_product_attention`. The
encoder embeds only the patches it is given (the student sees the context); the
predictor reads context tokens plus one learned query per target position and
predicts every target block of an image in a single pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def sincos_pos_embed(dim: int, grid: int, span: int | None = None) -> torch.Tensor:
    """(grid*grid, dim) fixed 2-D sin-cos positions: half the channels encode rows, half columns.
    With `span` (> grid), the grid's cells are spread over the positions of a span×span grid
    (cell centres), as for a small view seen by a model built for a larger image."""
    if dim % 4:
        raise ValueError(f"positional embedding width {dim} must be divisible by 4")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    coords = torch.arange(grid, dtype=torch.float64)
    if span is not None and span != grid:
        coords = (coords + 0.5) * (span / grid) - 0.5
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")

    def embed(pos):
        out = pos.reshape(-1, 1) * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    return torch.cat([embed(ys), embed(xs)], dim=1).float()


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x: B×N×D, idx: B×K (long) → B×K×D."""
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x))


def init_weights(module: nn.Module, depth: int) -> None:
    """Truncated-normal linears, unit LayerNorms, and residual projections scaled by depth."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for i, blk in enumerate(m for m in module.modules() if isinstance(m, Block)):
        blk.attn.proj.weight.data.div_(math.sqrt(2.0 * (i % depth + 1)))
        blk.mlp[2].weight.data.div_(math.sqrt(2.0 * (i % depth + 1)))


class VisionTransformer(nn.Module):
    def __init__(self, image_size: int, patch_size: int, dim: int, depth: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.grid = image_size // patch_size
        self.dim = dim
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.register_buffer("pos_embed", sincos_pos_embed(dim, self.grid), persistent=False)
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        init_weights(self, depth)

    def positions(self, grid: int) -> torch.Tensor:
        """Positional embeddings for a grid×grid input: the model's own, or spread over it (small views)."""
        if grid == self.grid:
            return self.pos_embed
        return sincos_pos_embed(self.dim, grid, span=self.grid).to(self.pos_embed.device)

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """images B×3×H×W → B×N×D tokens; with `keep` (B×K patch indices) only those K patches.
        Images smaller than the model's size (local views) get positions spread over its grid."""
        x = self.patch_embed(images)
        x = x.flatten(2).transpose(1, 2) + self.positions(x.shape[-1])
        if keep is not None:
            x = gather_tokens(x, keep)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def top_block_outputs(self, images: torch.Tensor, count: int) -> list[torch.Tensor]:
        """The outputs (B×N×D, before the final norm) of the last `count` blocks, for all patches."""
        x = self.patch_embed(images)
        x = x.flatten(2).transpose(1, 2) + self.positions(x.shape[-1])
        outs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i >= len(self.blocks) - count:
                outs.append(x)
        return outs


def predictor_attn_mask(n_context: int, n_blocks: int, block_len: int, device) -> torch.Tensor:
    """Boolean L×L mask (True = may attend): every token sees the context; a target query also sees
    the queries of its own block, never another block's, so all blocks share one pass without
    leaking into each other. Context tokens see only the context."""
    block_id = torch.cat([torch.full((n_context,), -1), torch.arange(n_blocks).repeat_interleave(block_len)])
    block_id = block_id.to(device)
    return (block_id[None, :] == -1) | (block_id[:, None] == block_id[None, :])


class Predictor(nn.Module):
    """`per_block=True` is I-JEPA's own predictor: one pass per target block, the context repeated
    in each and attending to that block's queries. The default predicts all blocks in one pass."""

    def __init__(
        self, grid: int, enc_dim: int, dim: int, depth: int, num_heads: int, mlp_ratio: float, per_block: bool = False
    ):
        super().__init__()
        self.dim = dim
        self.per_block = per_block
        self.embed = nn.Linear(enc_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", sincos_pos_embed(dim, grid), persistent=False)
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        init_weights(self, depth)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, context: torch.Tensor, ctx_idx: torch.Tensor, tgt_idx: torch.Tensor) -> torch.Tensor:
        """context B×Nc×D_enc at ctx_idx (B×Nc); tgt_idx B×M×Nt → conditioning B×(M·Nt)×dim."""
        b, m, nt = tgt_idx.shape
        nc = context.shape[1]
        pos = self.pos_embed.expand(b, -1, -1)
        x = self.embed(context) + gather_tokens(pos, ctx_idx)
        queries = self.mask_token + gather_tokens(pos, tgt_idx.flatten(1))
        if self.per_block:  # (B·M) sequences of context + one block's queries
            x = torch.cat([x.repeat_interleave(m, dim=0), queries.reshape(b * m, nt, -1)], dim=1)
            mask = None
        else:
            x = torch.cat([x, queries], dim=1)
            mask = predictor_attn_mask(nc, m, nt, x.device) if m > 1 else None
        for blk in self.blocks:
            x = blk(x, mask)
        return self.norm(x[:, nc:]).reshape(b, m * nt, -1)
