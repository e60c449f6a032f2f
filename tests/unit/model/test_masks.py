import pytest
import torch

from vjepa.model.masks import MultiBlockMaskSampler

G = 8


def draws(sampler, n_batches=60, batch=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [sampler(batch, g) for _ in range(n_batches)]


@pytest.fixture(scope="module")
def paper_draws():
    """The paper's policy on its 8x8 grid: 3,840 images over 60 batches."""
    return draws(MultiBlockMaskSampler(G))


def test_shapes_and_dtypes(paper_draws):
    for m in paper_draws:
        assert m.context.dtype == torch.long and m.targets.dtype == torch.long
        assert m.context.shape[0] == 64 and m.targets.shape[:2] == (64, 4)
        assert m.context.min() >= 0 and m.context.max() < G * G
        assert m.targets.min() >= 0 and m.targets.max() < G * G


def test_context_disjoint_from_targets_and_large_enough(paper_draws):
    for m in paper_draws:
        for ctx, tgt in zip(m.context, m.targets):
            assert len(set(ctx.tolist())) == len(ctx)  # no repeated patch
            assert ctx.tolist() == sorted(ctx.tolist())
            assert not set(ctx.tolist()) & set(tgt.flatten().tolist())
        assert m.context.shape[1] >= 8


def _block_hw(block: torch.Tensor) -> tuple[int, int]:
    rows, cols = block // G, block % G
    h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    return h, w


def test_targets_are_rectangles_in_range(paper_draws):
    areas, aspects = [], []
    for m in paper_draws:
        for blocks in m.targets:
            for block in blocks:
                h, w = _block_hw(block)
                assert h * w == len(block) == len(set(block.tolist()))  # a filled rectangle
                rows = (block // G).tolist()
                assert rows == sorted(rows)  # raster order
                areas.append(h * w / G**2)
                aspects.append(h / w)
    # Whole-patch rounding of an area in [0.15, 0.20] and aspect in [0.75, 1.5] on an 8x8 grid.
    for a, ar in zip(areas, aspects):
        assert 0.125 <= a <= 0.25 and 0.5 <= ar <= 2.0
    mean_area = sum(areas) / len(areas)
    assert 0.14 <= mean_area <= 0.21


def test_every_cell_is_covered_and_blocks_reach_the_last_row_and_column(paper_draws):
    target_hits = torch.zeros(G * G)
    context_hits = torch.zeros(G * G)
    last_row = last_col = 0
    for m in paper_draws:
        target_hits += torch.bincount(m.targets.flatten(), minlength=G * G)
        context_hits += torch.bincount(m.context.flatten(), minlength=G * G)
        last_row += int(((m.targets // G) == G - 1).any(-1).sum())
        last_col += int(((m.targets % G) == G - 1).any(-1).sum())
    assert (target_hits > 0).all() and (context_hits > 0).all()
    assert last_row > 0 and last_col > 0
    # Placement is uniform over all valid positions, so coverage is symmetric: the
    # bottom-right quadrant is hit about as often as the top-left one.
    grid = target_hits.view(G, G)
    tl, br = grid[:4, :4].sum(), grid[4:, 4:].sum()
    assert abs(tl - br) / (tl + br) < 0.05
    ctx = context_hits.view(G, G)
    assert abs(ctx[:4, :4].sum() - ctx[4:, 4:].sum()) / ctx.sum() < 0.05


def test_full_grid_context_block_is_possible():
    s = MultiBlockMaskSampler(G, context_scale=(1.0, 1.0))
    g = torch.Generator().manual_seed(1)
    assert s.block_size((1.0, 1.0), (1.0, 1.0), g) == (G, G)
    m = s(16, g)
    union = set()
    for ctx in m.context:
        union |= set(ctx.tolist())
    # Some image keeps a context patch in the last row and the last column.
    assert any(i // G == G - 1 for i in union) and any(i % G == G - 1 for i in union)


def test_surplus_context_is_dropped_at_random_not_by_raster_prefix():
    """Images keep different numbers of context patches (targets may overlap); equalising them must
    not systematically drop the highest indices as a raster prefix would."""
    s = MultiBlockMaskSampler(
        G, num_targets=4, target_scale=(0.06, 0.06), target_aspect=(1.0, 1.0), context_scale=(1.0, 1.0), min_context=8
    )
    g = torch.Generator().manual_seed(2)
    kept = eligible = 0
    surplus = 0
    for _ in range(200):
        m = s(32, g)
        in_target = (m.targets.flatten(1) == G * G - 1).any(1)
        eligible += int((~in_target).sum())
        kept += int((m.context == G * G - 1).any(1).sum())
        n_eligible = 64 - torch.tensor([len(set(t.flatten().tolist())) for t in m.targets])
        surplus += int((n_eligible > m.context.shape[1]).sum())
    assert surplus > 0.5 * 200 * 32  # most images had patches to drop
    # Random equalisation keeps the last patch in ~n_keep/n_eligible (> 80%) of images; a raster prefix
    # would drop it from every image with a surplus (kept < 50%).
    assert kept / eligible > 0.8


def test_same_generator_seed_gives_same_masks():
    a = draws(MultiBlockMaskSampler(G), n_batches=3, seed=7)
    b = draws(MultiBlockMaskSampler(G), n_batches=3, seed=7)
    for x, y in zip(a, b):
        assert torch.equal(x.context, y.context) and torch.equal(x.targets, y.targets)


def test_impossible_policy_fails_with_a_clear_message():
    s = MultiBlockMaskSampler(4, num_targets=4, target_scale=(0.9, 0.9), min_context=8, max_tries=5)
    with pytest.raises(RuntimeError, match="lower mask.num_targets"):
        s(4, torch.Generator().manual_seed(0))


def test_block_size_respects_ranges_before_rounding():
    """Area fraction and aspect h/w within their ranges up to rounding, drawn uniformly over them:
    over 2000 blocks their means are the ranges' midpoints 0.175 and 1.125 (within about 5 and 10
    standard errors) and they reach both ends."""
    s = MultiBlockMaskSampler(32)  # fine grid: rounding error is small
    g = torch.Generator().manual_seed(3)
    areas, aspects = [], []
    for _ in range(2000):
        h, w = s.block_size((0.15, 0.2), (0.75, 1.5), g)
        assert 0.15 - 0.03 <= h * w / 32**2 <= 0.2 + 0.03
        assert 0.75 - 0.1 <= h / w <= 1.5 + 0.1
        areas.append(h * w / 32**2)
        aspects.append(h / w)
    assert abs(sum(areas) / 2000 - 0.175) < 0.003 and min(areas) < 0.155 and max(areas) > 0.195
    assert abs(sum(aspects) / 2000 - 1.125) < 0.025 and min(aspects) < 0.8 and max(aspects) > 1.45
