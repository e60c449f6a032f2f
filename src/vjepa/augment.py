"""Batched image augmentation on the model's device: per-sample random resized crop + flip.

Parameters are drawn on the CPU from the training generator (so runs are
reproducible on any device), then one `affine_grid`/`grid_sample` call warps the
whole batch. Inputs are uint8 N×3×H×W tensors; outputs are normalised float.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def crop_params(n: int, scale, ratio, hflip: bool, generator: torch.Generator | None = None,
                tries: int = 10) -> torch.Tensor:
    """n×5 rows (cx, cy, w, h, sign): crop centre and size as fractions of the image, sign = -1 to flip.

    As torchvision's RandomResizedCrop: area fraction uniform in `scale`, log-aspect uniform
    in `ratio`, the first of `tries` draws that fits; the whole image if none fits.
    """
    area = torch.empty(n, tries).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(n, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    r = log_r.exp()
    w, h = (area * r).sqrt(), (area / r).sqrt()
    fits = (w <= 1) & (h <= 1)
    first = fits.float().argmax(1)  # index of the first fitting draw (0 when none fits)
    any_fit = fits.any(1)
    pick = lambda t: torch.where(any_fit, t.gather(1, first[:, None])[:, 0], torch.ones(n))
    w, h = pick(w), pick(h)
    u = torch.rand(n, 2, generator=generator)
    cx = w / 2 + u[:, 0] * (1 - w)
    cy = h / 2 + u[:, 1] * (1 - h)
    flip = torch.rand(n, generator=generator) < 0.5 if hflip else torch.zeros(n, dtype=torch.bool)
    sign = 1.0 - 2.0 * flip.float()
    return torch.stack([cx, cy, w, h, sign], dim=1)


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (or float 0..255) N×3×H×W → float, standardised per channel."""
    mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def apply_crops(images: torch.Tensor, params: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """Warp each image to its crop (bilinear), flip where asked, and normalise: N×3×size×size float."""
    n = images.shape[0]
    p = params.to(images.device, torch.float32)
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0] = p[:, 2] * p[:, 4]  # crop width, negative to mirror
    theta[:, 0, 2] = p[:, 0] * 2 - 1
    theta[:, 1, 1] = p[:, 3]
    theta[:, 1, 2] = p[:, 1] * 2 - 1
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    x = normalize(images, mean, std)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resize(images: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """Validation transform: resize only (a no-op when the size already matches), then normalise."""
    x = normalize(images, mean, std)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x
