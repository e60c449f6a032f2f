"""Batched image augmentation on the model's device: per-sample crop, flip, rotation and
photometric jitter (brightness, contrast, saturation, grayscale, blur).

Every random number is drawn on the CPU from the training generator (`view_params`), so a
run is reproducible from its step seed on any device; `render_views` then applies them to
the whole batch at once: one `affine_grid`/`grid_sample` warp, colour arithmetic on
[0, 1] values, one grouped convolution for the blur, and the per-channel normalisation.
Inputs are uint8 N×3×H×W tensors; outputs are normalised float.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Columns of a view-parameter row (`view_params`): the crop of `crop_params`, then rotation and colour.
CX, CY, W, H, SIGN, ANGLE, BRIGHTNESS, CONTRAST, SATURATION, GRAY, BLUR = range(11)
NUM_PARAMS = 11
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


def crop_params(
    n: int, scale, ratio, hflip: bool, generator: torch.Generator | None = None, tries: int = 10
) -> torch.Tensor:
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


def view_params(n: int, aug, scale, generator: torch.Generator | None = None) -> torch.Tensor:
    """n×NUM_PARAMS rows for `render_views`, from an `AugmentConfig` and the crop area range `scale`.

    The same number of values is drawn whatever is switched off, so turning one augmentation
    on or off does not reshuffle the others' draws of a later view. Colour jitter (probability
    `color_prob`) multiplies brightness, contrast and saturation by factors uniform in
    [1 - s, 1 + s] (s = `color_jitter`); grayscale with `grayscale_prob`; a Gaussian blur of
    sigma uniform in `blur_sigma` (output pixels) with `blur_prob`; a rotation uniform in
    ±`rotate_degrees`.
    """
    crop = crop_params(n, scale, aug.crop_ratio, aug.hflip, generator)
    u = torch.rand(n, 8, generator=generator)
    angle = (2 * u[:, 0] - 1) * math.radians(aug.rotate_degrees)
    s = aug.color_jitter
    jitter = (u[:, 1] < aug.color_prob) & (s > 0)
    factors = torch.where(jitter[:, None], 1 - s + 2 * s * u[:, 2:5], torch.ones(n, 3))
    gray = (u[:, 5] < aug.grayscale_prob).float()
    lo, hi = aug.blur_sigma
    blur = torch.where(u[:, 6] < aug.blur_prob, lo + (hi - lo) * u[:, 7], torch.zeros(n))
    return torch.cat([crop, angle[:, None], factors, gray[:, None], blur[:, None]], dim=1)


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (or float 0..255) N×3×H×W → float, standardised per channel."""
    mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def view_theta(p: torch.Tensor) -> torch.Tensor:
    """N×2×3 affine maps (as `F.affine_grid` takes them) from a view's normalised coordinates
    ([-1, 1], align_corners=False) to the image's: crop, mirror where sign < 0, rotation by
    `angle` when the rows have that column."""
    n = p.shape[0]
    scale = torch.stack([p[:, W] * p[:, SIGN], p[:, H]], dim=1)  # crop width, negative to mirror
    theta = torch.zeros(n, 2, 3, device=p.device)
    if p.shape[1] > ANGLE:
        cos, sin = p[:, ANGLE].cos(), p[:, ANGLE].sin()
        theta[:, 0, 0], theta[:, 0, 1] = cos * scale[:, 0], -sin * scale[:, 1]
        theta[:, 1, 0], theta[:, 1, 1] = sin * scale[:, 0], cos * scale[:, 1]
    else:
        theta[:, 0, 0], theta[:, 1, 1] = scale[:, 0], scale[:, 1]
    theta[:, 0, 2] = p[:, CX] * 2 - 1
    theta[:, 1, 2] = p[:, CY] * 2 - 1
    return theta


def _warp(x: torch.Tensor, p: torch.Tensor, size: int) -> torch.Tensor:
    """Each image to its view (`view_theta`, bilinear): N×C×size×size."""
    n = x.shape[0]
    grid = F.affine_grid(view_theta(p), (n, x.shape[1], size, size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """N×3×H×W → N×1×H×W luma."""
    w = torch.tensor(GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def color_jitter(
    x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor, gray: torch.Tensor
) -> torch.Tensor:
    """Per-image factors (N) on [0, 1] images, in torchvision's definitions and a fixed order:
    brightness scales, contrast blends with the image's mean luma, saturation with its luma
    image, then grayscale where `gray` is 1; values clamped to [0, 1] after each."""
    f = lambda v: v.view(-1, 1, 1, 1)
    x = (x * f(brightness)).clamp(0, 1)
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (mean + (x - mean) * f(contrast)).clamp(0, 1)
    g = grayscale(x)
    x = (g + (x - g) * f(saturation)).clamp(0, 1)
    return torch.lerp(x, grayscale(x).expand_as(x), f(gray))


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma (pixels) per image; sigma 0 leaves an image as it is.
    The kernel radius is 3 sigma of the largest sigma, reflect-padded; one grouped conv per axis.
    `sigma` may stay on the CPU (the kernel size is read from it without a device sync)."""
    s_max = float(sigma.max())
    if s_max <= 0:
        return x
    n, c, h, w = x.shape
    r = max(1, min(math.ceil(3 * s_max), min(h, w) - 1))
    offsets = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    s = sigma.to(x.device, x.dtype).clamp_min(1e-6)[:, None]
    k = torch.exp(-0.5 * (offsets[None] / s) ** 2)
    k = torch.where(sigma.to(x.device)[:, None] > 0, k, (offsets[None] == 0).to(x.dtype))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (N·C)×(2r+1)
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, h, w)


def render_views(images: torch.Tensor, params: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """uint8 N×3×H×W and N×k parameter rows (`crop_params`' 5 columns, or `view_params`' all) →
    N×3×size×size normalised float views: warp, then colour jitter and blur where the rows have them."""
    p = params.to(images.device, torch.float32)
    x = _warp(images.float() / 255, p, size)
    if params.shape[1] == NUM_PARAMS:  # the on/off decisions read the CPU rows: no device sync
        if bool((params[:, BRIGHTNESS:GRAY] != 1).any() or (params[:, GRAY] > 0).any()):
            x = color_jitter(x, p[:, BRIGHTNESS], p[:, CONTRAST], p[:, SATURATION], p[:, GRAY])
        x = gaussian_blur(x, params[:, BLUR].float())
    return normalize(x * 255, mean, std)


def apply_crops(images: torch.Tensor, params: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """Warp each image to its crop (`crop_params` rows), flip where asked, and normalise."""
    return render_views(images, params[:, :ANGLE], size, mean, std)


def resize(images: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """Validation transform: resize only (a no-op when the size already matches), then normalise."""
    x = normalize(images, mean, std)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x
