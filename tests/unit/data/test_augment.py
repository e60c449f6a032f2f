import math
from types import SimpleNamespace

import pytest
import torch

from vjepa.data.augment import (  # noqa: F401 (read through globals() by identity_row)
    ANGLE,
    BLUR,
    BRIGHTNESS,
    CONTRAST,
    GRAY,
    NUM_PARAMS,
    SATURATION,
    apply_crops,
    color_jitter,
    crop_params,
    gaussian_blur,
    grayscale,
    normalize,
    render_views,
    resize,
    view_params,
)


def test_crop_params_respect_scale_ratio_and_bounds():
    g = torch.Generator().manual_seed(0)
    p = crop_params(5000, (0.3, 1.0), (0.75, 4 / 3), True, g)
    cx, cy, w, h, sign = p.T
    area, ratio = w * h, w / h
    assert ((area >= 0.3 - 1e-6) & (area <= 1 + 1e-6)).all()
    assert ((ratio >= 0.75 - 1e-5) & (ratio <= 4 / 3 + 1e-5)).all()
    assert ((cx - w / 2 >= -1e-6) & (cx + w / 2 <= 1 + 1e-6)).all()
    assert ((cy - h / 2 >= -1e-6) & (cy + h / 2 <= 1 + 1e-6)).all()
    assert set(sign.tolist()) == {1.0, -1.0}
    assert abs((sign < 0).float().mean() - 0.5) < 0.05  # per-sample flips, half of them
    assert w.std() > 0.05  # per-sample sizes, not one for the batch


def test_no_flip_when_disabled():
    p = crop_params(100, (0.5, 1.0), (1.0, 1.0), False, torch.Generator().manual_seed(0))
    assert (p[:, 4] == 1).all()


def test_identity_crop_returns_the_normalised_image():
    img = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    ident = torch.tensor([[0.5, 0.5, 1.0, 1.0, 1.0]] * 2)
    out = apply_crops(img, ident, 8, [0.5] * 3, [0.25] * 3)
    torch.testing.assert_close(out, normalize(img, [0.5] * 3, [0.25] * 3), atol=1e-4, rtol=0)


def test_flip_mirrors_columns():
    img = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8)
    flip = torch.tensor([[0.5, 0.5, 1.0, 1.0, -1.0]])
    out = apply_crops(img, flip, 8, [0.0] * 3, [1 / 255] * 3)
    torch.testing.assert_close(out, img.float().flip(-1), atol=1e-3, rtol=0)


def test_quarter_crop_picks_the_right_region():
    # Top-left quadrant of a 16x16 image, resized to 8x8: exact 2x2 average of that quadrant.
    img = torch.arange(256, dtype=torch.float32).view(1, 1, 16, 16).expand(1, 3, 16, 16).clone()
    crop = torch.tensor([[0.25, 0.25, 0.5, 0.5, 1.0]])
    out = apply_crops(img, crop, 8, [0.0] * 3, [1 / 255] * 3)
    expected = img[:, :, :8, :8]
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=0)


def test_resize_is_identity_at_the_same_size_and_downsamples_otherwise():
    img = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    torch.testing.assert_close(resize(img, 16, [0.0] * 3, [1 / 255] * 3), img.float())
    small = resize(img, 8, [0.0] * 3, [1 / 255] * 3)
    assert small.shape == (3, 3, 8, 8)
    torch.testing.assert_close(small.mean(), img.float().mean(), atol=1.0, rtol=0)


def test_runs_on_the_images_device_and_is_batched():
    img = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    p = crop_params(64, (0.3, 1.0), (0.75, 1.33), True, torch.Generator().manual_seed(1))
    out = apply_crops(img, p, 32, [0.5] * 3, [0.2] * 3)
    assert out.shape == (64, 3, 32, 32) and out.dtype == torch.float32 and out.device == img.device
    # Different per-sample parameters give different outputs for the same input image.
    same = img[:1].expand(2, -1, -1, -1)
    two = apply_crops(same, p[:2], 32, [0.5] * 3, [0.2] * 3)
    assert not torch.allclose(two[0], two[1])


# --- rotation and photometric jitter (view_params + render_views) ---------------------------------

UNIT = ([0.0] * 3, [1 / 255] * 3)  # mean/std that leave values at 0..255


def aug(**kw):
    base = dict(
        crop_ratio=(0.75, 4 / 3),
        hflip=True,
        rotate_degrees=0.0,
        color_jitter=0.0,
        color_prob=0.8,
        grayscale_prob=0.0,
        blur_prob=0.0,
        blur_sigma=(0.1, 1.0),
    )
    return SimpleNamespace(**{**base, **kw})


def identity_row(**cols):
    row = torch.tensor([[0.5, 0.5, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]])
    for k, v in cols.items():
        row[0, globals()[k]] = v
    return row


def test_view_params_are_a_function_of_the_generator_seed_and_respect_the_ranges():
    a = aug(rotate_degrees=15, color_jitter=0.4, grayscale_prob=0.2, blur_prob=0.5, blur_sigma=(0.2, 0.9))
    p = view_params(4000, a, (0.3, 1.0), torch.Generator().manual_seed(0))
    assert p.shape == (4000, NUM_PARAMS)
    assert torch.equal(p, view_params(4000, a, (0.3, 1.0), torch.Generator().manual_seed(0)))
    assert (p[:, ANGLE].abs() <= math.radians(15) + 1e-6).all() and p[:, ANGLE].std() > 0.1
    f = p[:, BRIGHTNESS:GRAY]
    assert ((f >= 0.6 - 1e-6) & (f <= 1.4 + 1e-6)).all()
    jittered = (f != 1).any(1).float().mean().item()
    assert jittered == pytest.approx(0.8, abs=0.03)
    assert p[:, GRAY].mean().item() == pytest.approx(0.2, abs=0.03)
    blurred = p[:, BLUR] > 0
    assert blurred.float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert (p[blurred, BLUR] >= 0.2).all() and (p[blurred, BLUR] <= 0.9).all()


def test_switching_an_augmentation_off_does_not_reshuffle_the_others():
    on = view_params(64, aug(color_jitter=0.4, grayscale_prob=0.2), (0.3, 1.0), torch.Generator().manual_seed(3))
    off = view_params(64, aug(), (0.3, 1.0), torch.Generator().manual_seed(3))
    assert torch.equal(on[:, :BRIGHTNESS], off[:, :BRIGHTNESS])  # same crops, flips and angles
    assert (off[:, BRIGHTNESS:GRAY] == 1).all() and (off[:, GRAY] == 0).all() and (off[:, BLUR] == 0).all()


def test_identity_row_renders_the_image_and_rotation_by_90_degrees_turns_it():
    img = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(render_views(img, identity_row(), 8, *UNIT), img.float(), atol=1e-3, rtol=0)
    turned = render_views(img, identity_row(ANGLE=math.pi / 2), 8, *UNIT)
    torch.testing.assert_close(turned, torch.rot90(img.float(), k=1, dims=(2, 3)), atol=1e-3, rtol=0)


def test_colour_jitter_known_answers():
    x = torch.rand(3, 3, 6, 6) * 0.5
    one, zero = torch.ones(3), torch.zeros(3)
    torch.testing.assert_close(color_jitter(x, one * 2, one, one, zero), (x * 2).clamp(0, 1))  # brightness
    gray = grayscale(x)
    torch.testing.assert_close(color_jitter(x, one, one, zero, zero), gray.expand_as(x))  # saturation 0
    flat = color_jitter(x, one, zero, one, zero)  # contrast 0: every pixel the image's mean luma
    torch.testing.assert_close(flat, gray.mean(dim=(1, 2, 3), keepdim=True).expand_as(x))
    g = color_jitter(x, one, one, one, one)
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])  # grayscale: equal channels
    torch.testing.assert_close(color_jitter(x, one, one, one, zero), x)  # factors 1: unchanged
    lum = torch.tensor([0.299, 0.587, 0.114])
    torch.testing.assert_close(gray[:, 0], (x * lum.view(1, 3, 1, 1)).sum(1))


def test_blur_keeps_constants_and_means_and_sigma_zero_is_identity():
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(gaussian_blur(x, torch.zeros(2)), x)
    const = torch.full((1, 3, 8, 8), 0.3)
    torch.testing.assert_close(gaussian_blur(const, torch.tensor([1.0])), const)
    b = gaussian_blur(x, torch.tensor([0.0, 1.5]))
    torch.testing.assert_close(b[0], x[0])  # per-image sigma: the first image untouched
    assert b[1].std() < 0.7 * x[1].std()  # the second smoothed
    torch.testing.assert_close(b[1].mean(), x[1].mean(), atol=0.02, rtol=0)


def test_photometric_rows_through_render_views_match_the_pieces():
    img = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    rows = torch.cat([identity_row(BRIGHTNESS=0.7, SATURATION=1.3), identity_row(GRAY=1.0, BLUR=0.8)])
    out = render_views(img, rows, 8, *UNIT) / 255
    x = img.float() / 255
    first = color_jitter(x[:1], torch.tensor([0.7]), torch.ones(1), torch.tensor([1.3]), torch.zeros(1))
    second = gaussian_blur(grayscale(x[1:]).expand(1, 3, 8, 8), torch.tensor([0.8]))
    torch.testing.assert_close(out[:1], first, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1:], second, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_views_are_the_same_on_cpu_and_cuda():
    a = aug(rotate_degrees=15, color_jitter=0.4, grayscale_prob=0.2, blur_prob=0.5)
    img = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    p = view_params(16, a, (0.3, 1.0), torch.Generator().manual_seed(0))
    cpu = render_views(img, p, 32, [0.5] * 3, [0.2] * 3)
    cuda = render_views(img.cuda(), p, 32, [0.5] * 3, [0.2] * 3).cpu()
    torch.testing.assert_close(cpu, cuda, atol=1e-3, rtol=1e-3)
