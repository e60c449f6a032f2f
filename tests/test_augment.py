import torch

from vjepa.augment import apply_crops, crop_params, normalize, resize


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
