"""I-JEPA with a swappable head: student encoder, EMA teacher, predictor, head, and the shared
cross-view objective of `trunk.py`.

One `forward(views, masks, local, geometry)` gives the training loss and its weighted parts: the
teacher encodes each full view, its layer-normed tokens at the target positions are the targets
(or, with trunk.target_view: other, the next view's tokens at the same image points); the student
encodes each view's context only; the predictor turns context + target positions into `cond` for
the head, whose loss (times trunk.predict_weight) is the masked-token loss. The student's pooled
context features of every view (and of the small local views, encoded whole) feed the cross-view
term.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vjepa.core.config import Config
from vjepa.core.distributed import gather_rows, shard
from vjepa.model.heads import Head, build_head
from vjepa.model.masks import Masks
from vjepa.model.trunk import CrossViewObjective, total
from vjepa.model.vit import Predictor, VisionTransformer, gather_tokens


class JEPA(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        self.encoder = VisionTransformer(
            cfg.data.image_size, m.patch_size, m.embed_dim, m.depth, m.num_heads, m.mlp_ratio
        )
        self.teacher = copy.deepcopy(self.encoder).requires_grad_(False)
        self.predictor = Predictor(
            self.encoder.grid,
            m.embed_dim,
            m.pred_dim,
            m.pred_depth,
            m.pred_num_heads,
            m.mlp_ratio,
            per_block=m.predictor_pass == "per_block",
        )
        self.head: Head = build_head(cfg.head_name, m.pred_dim, m.embed_dim, cfg.head)
        self.cross_view = CrossViewObjective(cfg.trunk, m.embed_dim)
        if not cfg.trunk.cross_view_on:  # its projector takes no part in the loss: not trained (and DDP needs
            self.cross_view.requires_grad_(False)  # every trained parameter to get a gradient)
        self.views = cfg.trunk.global_views
        self.target_view = cfg.trunk.target_view
        self.target_layers, self.target_norm = cfg.trunk.target_layers, cfg.trunk.target_norm
        self.cross_view_on = cfg.trunk.cross_view_on
        self.predict_weight = cfg.trunk.predict_weight
        if not self.predict_weight:  # the cross-view term alone: predictor and head take no part in the loss
            self.predictor.requires_grad_(False)
            self.head.requires_grad_(False)
        # trunk.predict_share: the masked-token loss's gradient reaches the encoder times this scale
        # (vjepa.model.gradient_share keeps it at the set share); a buffer, so a resumed run goes on with it.
        if cfg.trunk.predict_share is not None:
            self.register_buffer("predict_scale", torch.ones(()))
        else:
            self.predict_scale = None

    @torch.no_grad()
    def targets(
        self, images: torch.Tensor, tgt_idx: torch.Tensor, geometry: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Layer-normed (no affine) teacher tokens at the target positions: B×(M·Nt)×D. With
        trunk.target_view = other (`geometry`: every global view's view-to-image map), each view's
        targets are the next view's tokens at the same points of the image (`other_view_tokens`);
        without `geometry` (held-out scoring: one view per image) its own."""
        h = self.teacher_tokens(images)
        if self.target_view == "other" and geometry is not None:
            rows = torch.arange(len(geometry), device=h.device)[shard(len(geometry))]
            h = other_view_tokens(gather_rows(h), geometry, self.encoder.grid, self.views)[rows]
        return gather_tokens(h, tgt_idx.flatten(1))

    @torch.no_grad()
    def teacher_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's target tokens of every patch, each layer-normed (no affine). trunk.target_layers
        > 1 averages the last blocks' outputs (data2vec); trunk.target_norm = instance first normalises
        each channel over an image's tokens (what all tokens of an image share is not a target)."""
        if self.target_layers == 1:
            layers = [self.teacher(images)]
        else:
            layers = [F.layer_norm(x, x.shape[-1:]) for x in self.teacher.top_block_outputs(images, self.target_layers)]
        if self.target_norm == "instance":
            layers = [
                (x - x.mean(1, keepdim=True)) / (x.var(1, keepdim=True, unbiased=False) + 1e-6).sqrt() for x in layers
            ]
        h = layers[0] if len(layers) == 1 else torch.stack(layers).mean(0)
        return F.layer_norm(h, h.shape[-1:])

    def conditioning(self, images: torch.Tensor, masks: Masks) -> tuple[torch.Tensor, torch.Tensor]:
        """(cond B×(M·Nt)×C, student context tokens B×Nc×D)."""
        z = self.encoder(images, masks.context)
        return self.predictor(z, masks.context, masks.targets), z

    def forward(
        self, views: torch.Tensor, masks: Masks, local: torch.Tensor | None = None, geometry: torch.Tensor | None = None
    ):
        """Training loss, its weighted parts (with their graphs: `predict`, the head's masked-token loss
        times trunk.predict_weight, and the cross-view terms inv/var/cov/sigreg; vjepa.model.gradient_share
        measures each one's gradient on the encoder), diagnostics, the student's context tokens (for
        collapse monitoring) and the head's conditioning (for the head's histograms; None when
        trunk.predict_weight is 0); the last two detached.

        `views` are (V·B)×3×H×W, view-major (row v·B + i is view v of image i, V = trunk.global_views),
        with one mask row each; `local` the (L·B) small views in the same order, or None; `geometry`
        the global batch's view-to-image maps (trunk.target_view: other). In a distributed run each
        rank holds a block of those rows (`vjepa.core.distributed`)."""
        parts, diag, cond = {}, {}, None
        z = self.encoder(views, masks.context)
        if self.predict_weight:
            target = self.targets(views, masks.targets, geometry)
            cond = self.predictor(scale_gradient(z, self.predict_scale), masks.context, masks.targets)
            head_loss, diag = self.head.loss(cond, target)
            diag = {**diag, "head_loss": head_loss.detach()}
            parts["predict"] = head_loss if self.predict_weight == 1 else self.predict_weight * head_loss
            cond = cond.detach()
        loss = parts.get("predict")
        if self.cross_view_on:  # over the global batch: every rank's pooled rows (distributed.gather_rows)
            pooled = gather_rows(z.mean(dim=1)).unflatten(0, (self.views, -1))  # V×B×D
            if local is not None:
                local = gather_rows(self.encoder(local).mean(dim=1))
                pooled = torch.cat([pooled, local.unflatten(0, (-1, pooled.shape[1]))])
            cross, terms = self.cross_view.weighted_terms(pooled)
            extra = total(cross, pooled)
            loss = extra if loss is None else loss + extra
            parts, diag = {**parts, **cross}, {**diag, **terms}
        return loss, parts, diag, z.detach(), cond

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        t = [p for p in self.teacher.parameters()]
        s = [p.detach() for p in self.encoder.parameters()]
        torch._foreach_lerp_(t, s, 1.0 - momentum)

    def trainable_named_parameters(self):
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad and not n.startswith("teacher.")]


def other_view_tokens(tokens: torch.Tensor, theta: torch.Tensor, grid: int, views: int) -> torch.Tensor:
    """For every row of a view-major batch of token grids (R×N×D, R = views × images, tokens layer
    normed) the tokens of the next view of the same image (view v+1, the last view's next being the
    first) at the image points of this view's patch centres, found through both views' view-to-image
    maps `theta` (R×2×3, `augment.view_theta`), bilinear between that view's patch centres and
    layer-normed again; a point that lies outside the other view keeps this view's own token."""
    r, n, d = tokens.shape
    other = (torch.arange(r, device=tokens.device) + r // views) % r
    c = (2 * torch.arange(grid, device=tokens.device, dtype=theta.dtype) + 1) / grid - 1  # patch centres
    y, x = torch.meshgrid(c, c, indexing="ij")
    centres = torch.stack([x.flatten(), y.flatten(), torch.ones(n, device=tokens.device, dtype=theta.dtype)], 1)
    points = centres @ theta.transpose(1, 2)  # R×N×2 in the image's coordinates
    a, t = theta[other, :, :2], theta[other, :, 2]
    there = torch.linalg.solve(a, (points - t[:, None]).transpose(1, 2)).transpose(1, 2)  # in the other view's
    inside = (there.abs() <= 1).all(-1)
    maps = tokens[other].transpose(1, 2).reshape(r, d, grid, grid).float()
    sampled = F.grid_sample(
        maps, there[:, :, None].float(), mode="bilinear", padding_mode="border", align_corners=False
    )[..., 0].transpose(1, 2)  # R×N×D
    sampled = F.layer_norm(sampled, (d,)).to(tokens.dtype)
    return torch.where(inside[..., None], sampled, tokens)


def scale_gradient(x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """x in the forward pass (exactly: x + scale·0); its gradient times `scale` in the backward."""
    if scale is None:
        return x
    d = x.detach()
    return d + scale * (x - d)


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
