"""I-JEPA with a swappable head: student encoder, EMA teacher, predictor trunk, head.

One `forward(images, masks)` gives the training loss: the teacher encodes the full
image, its layer-normed tokens at the target positions are the targets; the student
encodes the context only; the predictor turns context + target positions into `cond`
for the head, whose loss is the loss.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config
from .heads import Head, build_head
from .masks import Masks
from .regularizers import covariance_penalty, variance_hinge
from .vit import Predictor, VisionTransformer, gather_tokens


class JEPA(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        self.encoder = VisionTransformer(cfg.data.image_size, m.patch_size, m.embed_dim, m.depth, m.num_heads,
                                         m.mlp_ratio)
        self.teacher = copy.deepcopy(self.encoder).requires_grad_(False)
        self.predictor = Predictor(self.encoder.grid, m.embed_dim, m.pred_dim, m.pred_depth, m.pred_num_heads,
                                   m.mlp_ratio, per_block=m.predictor_pass == "per_block")
        self.head: Head = build_head(cfg.head_name, m.pred_dim, m.embed_dim, cfg.head)
        self.collapse_weights = (cfg.train.collapse_var_weight, cfg.train.collapse_cov_weight)

    @torch.no_grad()
    def targets(self, images: torch.Tensor, tgt_idx: torch.Tensor) -> torch.Tensor:
        """Layer-normed (no affine) teacher tokens at the target positions: B×(M·Nt)×D."""
        h = self.teacher(images)
        h = F.layer_norm(h, h.shape[-1:])
        return gather_tokens(h, tgt_idx.flatten(1))

    def conditioning(self, images: torch.Tensor, masks: Masks) -> tuple[torch.Tensor, torch.Tensor]:
        """(cond B×(M·Nt)×C, student context tokens B×Nc×D)."""
        z = self.encoder(images, masks.context)
        return self.predictor(z, masks.context, masks.targets), z

    def forward(self, images: torch.Tensor, masks: Masks):
        """Training loss, diagnostics, the student's context tokens (for collapse monitoring) and the
        head's conditioning (for the head's histograms); the last two detached."""
        target = self.targets(images, masks.targets)
        cond, z = self.conditioning(images, masks)
        loss, diag = self.head.loss(cond, target)
        diag = {**diag, "head_loss": loss.detach()}
        wv, wc = self.collapse_weights
        if wv or wc:
            # Shared by every head: keeps the student's per-image (pooled) features spread out.
            pooled = z.float().mean(dim=1)
            var, cov = variance_hinge(pooled), covariance_penalty(pooled)
            loss = loss + wv * var + wc * cov
            diag = {**diag, "collapse_var": var.detach(), "collapse_cov": cov.detach()}
        return loss, diag, z.detach(), cond.detach()

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        t = [p for p in self.teacher.parameters()]
        s = [p.detach() for p in self.encoder.parameters()]
        torch._foreach_lerp_(t, s, 1.0 - momentum)

    def trainable_named_parameters(self):
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad and not n.startswith("teacher.")]


def param_groups(model: JEPA, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms, and other 1-D parameters (tokens)."""
    decay, no_decay = [], []
    for name, p in model.trainable_named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") or "mask_token" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total: int, warmup: int, lr: float, min_lr: float) -> float:
    """Linear warmup from 0, then cosine decay to min_lr."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t))


def ema_at(step: int, total: int, start: float, end: float) -> float:
    """Cosine ramp of the teacher momentum from `start` (step 0) to `end` (last step)."""
    t = step / max(1, total - 1)
    return end - 0.5 * (end - start) * (1 + math.cos(math.pi * t))
