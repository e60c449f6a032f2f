"""How much of the encoder's gradient each part of the objective gives, and `trunk.predict_share`.

The training loss is a sum of weighted parts (`JEPA.forward`): `predict`, the head's masked-token
loss times trunk.predict_weight, and the cross-view terms `inv`, `var`, `cov`, `sigreg` times
their weights. Every `train.log_every` steps the training step measures the norm of each part's
gradient on the student encoder's parameters (one extra backward per part over the retained
graph, which the step's own backward then reuses: the update is the same as without the
measurement). A part's *share* is its norm over the sum of every part's norm; the heads' losses
have different scales (MSE, NLL per dimension, ε-MSE, velocity MSE), so at one weight each head
gets a different share.

With trunk.predict_share = ρ the masked-token loss's gradient reaches the encoder times a scale
s (`jepa.scale_gradient` at the predictor's input; the predictor and head keep their full
gradient). Each measurement computes the scale that would have given the share ρ on that batch,
s* = ρ/(1-ρ) · Σ(cross-view norms) / (predict norm / s), and moves log s 70% of the way to log s*
(the first measurement, at step 0, sets it): smoothed over measurements, from detached norms. s stays
at most MAX_SCALE, and a measurement in which the masked-token loss does not reach the encoder (RNADE
at step 0: its output layer starts at zero) leaves s as it is (1 until the next measurement).
"""

from __future__ import annotations

import torch

from vjepa.core import distributed

PREFIX = "enc_grad_"  # logged scalar of a part's gradient norm on the encoder: enc_grad_PART
SHARE = "predict_share"  # logged share of the masked-token loss
SCALE = "predict_scale"  # logged scale of trunk.predict_share
SMOOTHING = 0.3  # weight of the previous log-scale at each measurement
# The scale never goes above MAX_SCALE, and a measurement in which the masked-token loss sends the encoder
# less than NO_GRADIENT times the cross-view term's gradient leaves it as it is: a head whose output layer
# starts at zero (RNADE's) has no encoder gradient at step 0, and 0.1 / 0 would give s ~ 1e30, then inf.
MAX_SCALE = 1e6
NO_GRADIENT = 1e-9


def part_gradient_norms(parts: dict[str, torch.Tensor], params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """{part: L2 norm of d(part)/d(params)} over all of `params`, as 0-d fp32 tensors on the device
    (no host sync). The graph is kept for the step's own backward. In a distributed run each rank's
    gradient is averaged over the ranks first, as DDP averages the step's own, so the norm is that
    of the global batch's gradient whatever the number of ranks."""
    norms = {}
    for name, part in parts.items():
        grads = torch.autograd.grad(part, params, retain_graph=True, allow_unused=True)
        flat = torch.cat(
            [(g if g is not None else torch.zeros_like(w)).float().flatten() for g, w in zip(grads, params)]
        )
        norms[name] = torch.linalg.vector_norm(distributed.mean_over_ranks(flat))
    return norms


def scalars(norms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The logged scalars of one measurement: every part's norm and the masked-token loss's share
    (0 without it, 1 when it is the only part)."""
    total = torch.stack(list(norms.values())).sum()
    share = norms["predict"] / total.clamp_min(1e-30) if "predict" in norms else total.new_zeros(())
    return {**{PREFIX + k: v for k, v in norms.items()}, SHARE: share}


def wanted_scale(norms: dict[str, torch.Tensor], scale: torch.Tensor, share: float) -> torch.Tensor:
    """The scale of the masked-token loss's encoder gradient that gives it `share` of the summed
    norms, from norms measured with `scale` in place."""
    raw = norms["predict"] / scale.clamp_min(1e-30)
    rest = sum(v for k, v in norms.items() if k != "predict")
    return share / (1 - share) * rest / raw.clamp_min(1e-30)


@torch.no_grad()
def update_scale(scale: torch.Tensor, norms: dict[str, torch.Tensor], share: float, first: bool) -> None:
    """Move the buffer `scale` (in place) towards the scale that gives `share` (at most MAX_SCALE): set
    it at the first measurement, else 70% of the way in log space (SMOOTHING). A measurement without a
    masked-token gradient on the encoder, or with a non-finite one, leaves it."""
    target = wanted_scale(norms, scale, share).float().clamp_max(MAX_SCALE)
    rest = sum(v for k, v in norms.items() if k != "predict")
    ok = torch.isfinite(target) & (target > 0) & (norms["predict"] > NO_GRADIENT * rest)
    log_new = target.clamp_min(1e-30).log()
    if not first:
        log_new = SMOOTHING * scale.float().log() + (1 - SMOOTHING) * log_new
    scale.copy_(torch.where(ok, log_new.exp(), scale.float()).to(scale.dtype))


def summary(curve: list[dict]) -> dict | None:
    """metrics.json's record of the measurements in a run's logged curve: the mean of each part's
    norm and of the masked-token loss's share over the logged steps, and over the second half of
    training (where the encoder is shaped after the warm-up). None when nothing was measured."""
    rows = [r for r in curve if SHARE in r]
    if not rows:
        return None
    half = rows[len(rows) // 2 :]
    mean = lambda rs, k: float(sum(r[k] for r in rs) / len(rs))
    keys = sorted(k for k in rows[-1] if k.startswith(PREFIX))
    out = {
        "predict_share": mean(rows, SHARE),
        "predict_share_second_half": mean(half, SHARE),
        "norms": {k.removeprefix(PREFIX): mean(rows, k) for k in keys},
        "measurements": len(rows),
        "definition": "a part's L2 gradient norm on the student encoder's "
        "parameters; the share is the masked-token loss's norm over the sum of every part's norm",
    }
    if SCALE in rows[-1]:
        out["predict_scale_final"] = float(rows[-1][SCALE])
    return out
