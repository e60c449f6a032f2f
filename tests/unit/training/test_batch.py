"""The multi-view batch: each image's views stay paired (view-major rows), local views follow the
same order, every view has its own masks, and the batch is a function of the generator's seed."""

import dataclasses

import torch

from vjepa.core.config import resolve
from vjepa.model.masks import MultiBlockMaskSampler
from vjepa.training.batch import BatchStream, make_batch, step_seed

from conftest import tiny

STATS = {"mean": [0.0] * 3, "std": [1 / 255] * 3}  # leaves pixel values at 0..255


def setup(params, views=3, local=2, **augment):
    p = tiny(params)
    p["trunk"].update(global_views=views, local_views=local, local_size=8, invariance_weight=1.0)
    p["augment"].update(augment)
    cfg = resolve(p, "deterministic")
    images = (torch.arange(20, dtype=torch.uint8) * 10).view(20, 1, 1, 1).expand(20, 3, 16, 16).contiguous()
    sampler = MultiBlockMaskSampler.from_config(cfg.mask, cfg.data.image_size // cfg.model.patch_size)
    return cfg, images, sampler


def test_views_stay_paired_with_their_image(params):
    cfg, images, sampler = setup(params, rotate_degrees=15.0)  # geometric jitter cannot change a constant image
    idx = torch.tensor([7, 2, 19, 0, 11])
    b = make_batch(images, idx, cfg, STATS, sampler, torch.Generator().manual_seed(0))
    assert b.views.shape == (3 * 5, 3, 16, 16) and b.local.shape == (2 * 5, 3, 8, 8)
    assert b.masks.context.shape[0] == 15 and b.masks.targets.shape[0] == 15  # one mask row per view
    expected = (idx.float() * 10).repeat(3)
    torch.testing.assert_close(b.views.mean(dim=(1, 2, 3)), expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(b.local.mean(dim=(1, 2, 3)), (idx.float() * 10).repeat(2), atol=1e-3, rtol=0)


def test_views_of_one_image_differ_and_masks_differ_per_view(params):
    cfg, _, sampler = setup(params, local=0)
    images = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8)
    b = make_batch(images, torch.tensor([4, 5]), cfg, STATS, sampler, torch.Generator().manual_seed(1))
    assert b.local is None
    assert not torch.allclose(b.views[0], b.views[2])  # views 0 and 1 of image 4: other crops
    assert not torch.equal(b.masks.context[0], b.masks.context[2]) or not torch.equal(
        b.masks.targets[0], b.masks.targets[2]
    )


def test_a_batch_is_a_function_of_the_seed(params):
    cfg, images, sampler = setup(params, color_jitter=0.4, grayscale_prob=0.3)
    images = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8)
    idx = torch.arange(6)
    a = make_batch(images, idx, cfg, STATS, sampler, torch.Generator().manual_seed(step_seed(0, 5)))
    b = make_batch(images, idx, cfg, STATS, sampler, torch.Generator().manual_seed(step_seed(0, 5)))
    c = make_batch(images, idx, cfg, STATS, sampler, torch.Generator().manual_seed(step_seed(0, 6)))
    assert torch.equal(a.views, b.views) and torch.equal(a.local, b.local)
    assert all(torch.equal(x, y) for x, y in zip(a.masks, b.masks))
    assert not torch.equal(a.views, c.views)
    assert step_seed(0, 5) != step_seed(1, 5) and step_seed(0, 5) != step_seed(0, 6)


def test_one_view_is_the_paper_batch(params):
    cfg, images, sampler = setup(params, views=1, local=0)
    cfg = dataclasses.replace(cfg, trunk=dataclasses.replace(cfg.trunk, invariance_weight=0.0))
    b = make_batch(images, torch.arange(4), cfg, STATS, sampler, torch.Generator().manual_seed(0))
    assert b.views.shape == (4, 3, 16, 16) and b.local is None


def test_batch_stream_is_a_function_of_the_step():
    a, b = BatchStream(100, 16, seed=3), BatchStream(100, 16, seed=3)
    first_epoch = torch.cat([a.indices(s) for s in range(6)])
    assert len(set(first_epoch.tolist())) == 96  # no repeats within an epoch
    assert torch.equal(b.indices(7), a.indices(7))  # random access gives the same batch
    assert not torch.equal(a.indices(0), a.indices(6))  # a new permutation each epoch
