import math

import torch

from vjepa.model.vit import Predictor, VisionTransformer, gather_tokens, predictor_attn_mask, sincos_pos_embed


def test_sincos_positions_known_values():
    pe = sincos_pos_embed(8, 4)
    assert pe.shape == (16, 8)
    # Patch (row 0, col 0): sin(0) = 0, cos(0) = 1 in both halves.
    torch.testing.assert_close(pe[0], torch.tensor([0, 0, 1, 1, 0, 0, 1, 1.0]))
    # Patch (row 2, col 1), first frequency is 1: sin(2), cos(2) for rows; sin(1), cos(1) for columns.
    i = 2 * 4 + 1
    assert math.isclose(pe[i, 0], math.sin(2), abs_tol=1e-6) and math.isclose(pe[i, 2], math.cos(2), abs_tol=1e-6)
    assert math.isclose(pe[i, 4], math.sin(1), abs_tol=1e-6) and math.isclose(pe[i, 6], math.cos(1), abs_tol=1e-6)
    assert len({tuple(r) for r in pe.tolist()}) == 16  # every position distinct


def test_encoder_keeps_only_given_patches_and_matches_full_pass_without_attention_mixing():
    """Kept patches in any order give the full pass's tokens in that order when all are kept; a
    subset's tokens do not depend on the dropped patches' pixels; and with attention's output
    projection zeroed (no mixing between tokens) a subset's tokens are the full pass's at those
    positions, which with attention on they are not (the subset attends to itself alone)."""
    torch.manual_seed(0)
    enc = VisionTransformer(16, 4, dim=32, depth=2, num_heads=4, mlp_ratio=2.0).eval()
    x = torch.randn(3, 3, 16, 16)
    full = enc(x)
    assert full.shape == (3, 16, 32)
    perm = torch.stack([torch.randperm(16, generator=torch.Generator().manual_seed(i)) for i in range(3)])
    torch.testing.assert_close(enc(x, perm), gather_tokens(full, perm), atol=1e-5, rtol=1e-5)
    keep = torch.tensor([[0, 5, 9], [1, 2, 3], [15, 14, 0]])
    part = enc(x, keep)
    assert part.shape == (3, 3, 32)
    dropped = torch.ones(3, 1, 4, 4, dtype=torch.bool)  # patch grid 4×4: True where a patch is dropped
    for b, row in enumerate(keep):
        dropped.view(3, 16)[b, row] = False
    noise = x + 5 * torch.randn_like(x) * dropped.repeat_interleave(4, 2).repeat_interleave(4, 3)
    torch.testing.assert_close(enc(noise, keep), part, atol=1e-5, rtol=1e-5)  # dropped pixels changed
    assert not torch.allclose(enc(noise), full, atol=1e-2)  # ... which the full pass does see
    assert (part - gather_tokens(full, keep)).abs().max() > 1e-3  # attention mixes: a subset differs (by ~0.02)
    with torch.no_grad():
        for blk in enc.blocks:
            blk.attn.proj.weight.zero_()
            blk.attn.proj.bias.zero_()
    torch.testing.assert_close(enc(x, keep), gather_tokens(enc(x), keep), atol=1e-5, rtol=1e-5)


def test_attention_matches_manual_softmax():
    torch.manual_seed(0)
    enc = VisionTransformer(8, 4, dim=16, depth=1, num_heads=2, mlp_ratio=1.0)
    attn = enc.blocks[0].attn
    x = torch.randn(2, 5, 16)
    q, k, v = attn.qkv(x).view(2, 5, 3, 2, 8).permute(2, 0, 3, 1, 4)
    w = (q @ k.transpose(-1, -2) / math.sqrt(8)).softmax(-1)
    ref = attn.proj((w @ v).transpose(1, 2).reshape(2, 5, 16))
    torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)


def test_predictor_blocks_do_not_see_each_other():
    """All target blocks are predicted in one pass; changing one block's positions must not change
    another block's outputs, and must equal predicting that block alone."""
    torch.manual_seed(0)
    pred = Predictor(grid=4, enc_dim=16, dim=16, depth=2, num_heads=2, mlp_ratio=2.0).eval()
    ctx = torch.randn(1, 5, 16)
    ctx_idx = torch.tensor([[0, 1, 2, 3, 4]])
    tgt = torch.tensor([[[5, 6], [9, 10], [14, 15]]])
    out = pred(ctx, ctx_idx, tgt)
    assert out.shape == (1, 6, 16)
    alone = pred(ctx, ctx_idx, tgt[:, 1:2])
    torch.testing.assert_close(out[:, 2:4], alone, atol=1e-4, rtol=1e-4)
    moved = tgt.clone()
    moved[0, 0] = torch.tensor([7, 11])
    torch.testing.assert_close(pred(ctx, ctx_idx, moved)[:, 2:], out[:, 2:], atol=1e-4, rtol=1e-4)


def test_predictor_mask_structure():
    m = predictor_attn_mask(2, 2, 2, "cpu")
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 0, 0, 1, 1],
            [1, 1, 0, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(m, expected)


def test_per_block_predictor_is_one_pass_per_block():
    """I-JEPA's predictor: each block is predicted from the context and its own queries, the context
    attending to them too; equal to a one-block pass, and ordered image by image, block by block."""
    torch.manual_seed(0)
    joint = Predictor(grid=4, enc_dim=16, dim=16, depth=2, num_heads=2, mlp_ratio=2.0).eval()
    for blk in joint.blocks:  # sharper attention than the init's, so that who-sees-whom shows
        torch.nn.init.normal_(blk.attn.qkv.weight, std=0.5)
        torch.nn.init.normal_(blk.attn.proj.weight, std=0.5)
    per_block = Predictor(grid=4, enc_dim=16, dim=16, depth=2, num_heads=2, mlp_ratio=2.0, per_block=True).eval()
    per_block.load_state_dict(joint.state_dict())
    ctx = torch.randn(2, 5, 16)
    ctx_idx = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 8]])
    tgt = torch.tensor([[[5, 6], [9, 10], [14, 15]], [[0, 4], [11, 15], [6, 7]]])
    out = per_block(ctx, ctx_idx, tgt)
    assert out.shape == (2, 6, 16)
    for i in range(2):
        for blk in range(3):
            alone = joint(ctx[i : i + 1], ctx_idx[i : i + 1], tgt[i : i + 1, blk : blk + 1])
            torch.testing.assert_close(out[i : i + 1, 2 * blk : 2 * blk + 2], alone, atol=1e-4, rtol=1e-4)
    # In the joint pass the context never sees the queries, so the two differ beyond one layer.
    assert not torch.allclose(joint(ctx, ctx_idx, tgt), out, atol=1e-2)
