"""How good a head's predicted distributions are on held-out targets.

Validation images (resize only) get masks from a fixed generator; the trained
student + predictor give `cond`, the teacher gives the targets, and the head is
scored on them: exact NLL per dimension where the head has a density (for the diffusion
head its variational upper bound, on the scored tokens), cosine similarity of its point
prediction to the target, MSE and cosine of one sample per token (first batch), sampling
time per token, and, from many draws of the first tokens, the scores of `uncertainty.py`
(energy score, coverage, PIT, spread–error correlation, diversity, modes), on the same
scale for every head.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from vjepa.data.augment import resize
from vjepa.eval.embed import images_to_tensor
from vjepa.eval.uncertainty import (
    count_modes,
    coverage,
    energy_score,
    mean_pairwise_distance,
    pit,
    spread_error_correlation,
)
from vjepa.model.jepa import JEPA
from vjepa.model.masks import MultiBlockMaskSampler

MODE_TOKENS = 16  # tokens whose draws are clustered to count modes
PIT_BINS = 10
NLL_NOTES = {  # what stands in for the exact NLL of the heads without a density
    "DiffusionHead": "; nll_bound_per_dim is the DDPM variational upper bound on it",
    "FlowMatchingHead": " here (its likelihood needs an ODE solve with the velocity field's divergence)",
    "DeterministicHead": " (a point prediction)",
}


@torch.no_grad()
def held_out_batches(
    model: JEPA, images: np.ndarray, stats: dict, cfg, *, max_images: int = 512, batch_size: int = 128, seed: int = 0
):
    """Yield (cond, target) for up to `max_images` validation images with reproducible masks."""
    gen = torch.Generator().manual_seed(seed)
    sampler = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)
    device = next(model.parameters()).device
    for start in range(0, min(max_images, len(images)), batch_size):
        chunk = images_to_tensor(images[start : start + batch_size], device)
        x = resize(chunk, cfg.data.image_size, stats["mean"], stats["std"])
        masks = sampler(len(chunk), gen).to(device)
        cond, _ = model.conditioning(x, masks)
        yield cond, model.targets(x, masks.targets)


@torch.no_grad()
def sample_quality(draw: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Token MSE and cosine similarity of one draw per token (1×B×T×D) to the teacher targets."""
    draw, target = draw[0].float(), target.float()
    return {
        "sample_mse": float(F.mse_loss(draw, target)),
        "sample_cosine": float(F.cosine_similarity(draw, target, dim=-1).mean()),
    }


@torch.no_grad()
def head_metrics(model: JEPA, images: np.ndarray, stats: dict, cfg, *, seed: int = 0, max_images: int = 512) -> dict:
    """Held-out distribution metrics of `model.head` (see module docstring); `seed` fixes the masks
    and draws. Sampling is timed on the first batch only: some heads sample sequentially and are
    slow on a CPU."""
    model.eval()
    head = model.head
    nll, cos, n_tokens = [], [], 0
    torch.manual_seed(seed)
    for i, (cond, target) in enumerate(held_out_batches(model, images, stats, cfg, max_images=max_images, seed=seed)):
        if head.exact_log_prob:
            nll.append(-head.log_prob(cond, target).float().mean() / target.shape[-1])
        cos.append(F.cosine_similarity(head.point(cond).float(), target.float(), dim=-1).mean())
        n_tokens += cond.shape[0] * cond.shape[1]
        if i == 0:
            t0 = time.perf_counter()
            draw = head.sample(cond, 1)
            if draw.is_cuda:
                torch.cuda.synchronize()
            sample_ms = 1000.0 * (time.perf_counter() - t0) / (cond.shape[0] * cond.shape[1])
            quality = sample_quality(draw, target)
            scores = distribution_scores(
                head, cond, target, seed, num_draws=cfg.eval.draws, num_tokens=cfg.eval.scored_tokens
            )
    out = {
        "point_cosine": float(torch.stack(cos).mean()),
        **quality,
        "sample_ms_per_token": sample_ms,
        "held_out_tokens": n_tokens,
        **scores,
    }
    if head.exact_log_prob:
        out["nll_per_dim"] = float(torch.stack(nll).mean())
    else:
        out["nll_per_dim"] = None
        out["nll_note"] = f"n/a: {type(head).__name__} has no exact density" + NLL_NOTES.get(type(head).__name__, "")
    return out


@torch.no_grad()
def distribution_scores(
    head, cond: torch.Tensor, target: torch.Tensor, seed: int, *, num_draws: int = 64, num_tokens: int = 256
) -> dict:
    """`num_draws` draws for each of the first `num_tokens` tokens, scored against their targets."""
    c = cond.reshape(1, -1, cond.shape[-1])[:, :num_tokens]
    y_scored = target.reshape(1, -1, target.shape[-1])[:, :num_tokens]
    y = y_scored[0].float().cpu()
    draws = head.sample(c, num_draws)[:, 0].float().cpu()  # n×T×D
    point = head.point(c)[0].float().cpu()
    cov = coverage(draws, y, levels=(0.5, 0.9))
    u = pit(draws, y, torch.Generator().manual_seed(seed)).flatten()
    spearman = spread_error_correlation(draws, point, y)
    energy = float(energy_score(draws, y).mean())
    bound = {}
    if hasattr(head, "nll_bound"):  # an upper bound on the NLL where the head has no exact density
        bound["nll_bound_per_dim"] = float(head.nll_bound(c, y_scored).mean()) / y.shape[-1]
    return {
        **bound,
        "energy_score": energy,
        "energy_score_per_dim": energy / y.shape[-1],
        "coverage_50": cov[0.5],
        "coverage_90": cov[0.9],
        "pit_histogram": torch.histc(u, bins=PIT_BINS, min=0.0, max=1.0).div(u.numel()).tolist(),
        "spread_error_spearman": None if np.isnan(spearman) else spearman,
        "sample_pairwise_distance": mean_pairwise_distance(draws),
        "modes": float(np.mean([count_modes(draws[:, t], seed=seed) for t in range(min(MODE_TOKENS, y.shape[0]))])),
        "scored_tokens": int(y.shape[0]),
        "draws_per_token": num_draws,
    }
