"""The backbone objective that every head shares, beside its own masked-token loss (`trunk:` in params).

Each image comes as `trunk.global_views` augmented views at the model size (and
`trunk.local_views` small ones); the student's mean-pooled features of every view go through
a small projector, and a cross-view term acts on the projections:

- invariance: views of one image agree (`regularizers.invariance`);
- variance and covariance (VICReg): each view's projections stay spread out and decorrelated;
- SIGReg (LeJEPA): each view's projections are pushed towards an isotropic Gaussian.

Every term has a weight (0 = off). The paper's I-JEPA is one view with every weight 0; with
one view, no projector and only the variance/covariance weights set, this is a collapse
penalty on the pooled context features.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vjepa.model.regularizers import covariance_penalty, invariance, sigreg, variance_hinge


def projector(dim: int, width: int) -> nn.Sequential:
    """Linear → LayerNorm → GELU → Linear, the last with He-normal weights, so that projections start
    near unit scale per dimension. (With PyTorch's default init they start near 0.25, and Adam's
    bounded steps take hundreds of steps to scale them up, which the variance hinge then spends its
    whole short budget on; measured on digits: kNN 62% → 75% at 150 steps.) LayerNorm rather than
    VICReg's BatchNorm keeps each image's projection independent of the rest of the batch."""
    last = nn.Linear(width, width)
    nn.init.normal_(last.weight, std=(2.0 / width) ** 0.5)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Linear(dim, width), nn.LayerNorm(width), nn.GELU(), last)


class CrossViewObjective(nn.Module):
    def __init__(self, t, dim: int):
        super().__init__()
        self.t = t
        self.projector = projector(dim, t.projector_dim) if t.projector_dim else nn.Identity()

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """pooled: V×B×D student features, the global views first → (weighted sum, its detached terms)."""
        parts, diag = self.weighted_terms(pooled)
        return total(parts, pooled), diag

    def weighted_terms(self, pooled: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """({term: weight × term, with its graph} for every term whose weight is set, {trunk_TERM: the
        detached unweighted term}); the terms are named inv, var, cov and sigreg."""
        t = self.t
        if pooled.shape[1] < 2 and (t.standardize or t.variance_weight or t.covariance_weight or t.sigreg_weight):
            raise ValueError(
                f"the cross-view term needs at least 2 images per view for its batch statistics, got "
                f"{pooled.shape[1]} (rows are views x images: {pooled.shape[0]} x {pooled.shape[1]})"
            )
        z = self.projector(pooled.float())
        if t.standardize:  # per view and dimension over the batch: scale-free terms that shrinking cannot lower
            z = (z - z.mean(dim=1, keepdim=True)) / (z.var(dim=1, keepdim=True) + 1e-6).sqrt()
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        if t.invariance_weight:
            terms["inv"] = t.invariance_weight, invariance(z, t.global_views)
        if t.variance_weight:
            terms["var"] = t.variance_weight, torch.stack([variance_hinge(v) for v in z]).mean()
        if t.covariance_weight:
            terms["cov"] = t.covariance_weight, torch.stack([covariance_penalty(v) for v in z]).mean()
        if t.sigreg_weight:
            terms["sigreg"] = t.sigreg_weight, torch.stack([sigreg(v, t.sigreg_projections) for v in z]).mean()
        return ({k: w * v for k, (w, v) in terms.items()}, {f"trunk_{k}": v.detach() for k, (_, v) in terms.items()})


def total(parts: dict[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The sum of the weighted terms in their order, from an fp32 zero on `like`'s device."""
    return sum(parts.values(), like.new_zeros((), dtype=torch.float32))


def describe(t) -> str:
    """One line naming the trunk of a run, for the report."""
    return _views_and_terms(t) + _prediction(t)


def _views_and_terms(t) -> str:
    views = f"{t.global_views} view{'s' if t.global_views > 1 else ''} of each image"
    if t.local_views:
        views += f" and {t.local_views} local views of {t.local_size} px"
    if not t.cross_view_on:
        if t.global_views == 1:
            return "the paper's I-JEPA: one view of each image, the head's masked-token loss alone"
        return f"{views}, each with its own masks; the head's masked-token loss alone"
    names = (
        ("invariance", t.invariance_weight),
        ("variance", t.variance_weight),
        ("covariance", t.covariance_weight),
        ("SIGReg", t.sigreg_weight),
    )
    terms = ", ".join(f"{name} {w:g}" for name, w in names if w)
    on = f"{t.projector_dim}-d projections" if t.projector_dim else "the pooled features"
    if t.standardize:
        on = "standardised " + on
    if not t.predict_weight:
        return (
            f"{views}, each with its own masks; the cross-view term alone ({terms} on {on} of the student's "
            "pooled context features), no masked-token loss"
        )
    return f"{views}, each with its own masks; {terms} on {on} of the student's pooled context features"


def _prediction(t) -> str:
    """What is said of the masked-token loss beyond the default (weight 1, own targets, no held share)."""
    out = []
    if t.predict_weight and t.predict_weight != 1:
        out.append(f"the masked-token loss weighted {t.predict_weight:g}")
    if t.predict_share is not None:
        out.append(f"the masked-token loss held at {100 * t.predict_share:g}% of the encoder's gradient")
    if t.target_view == "other" and t.predict_weight:
        out.append("each view predicting the teacher's tokens of the next view of the image at the same points")
    if t.predict_weight and (t.target_layers > 1 or t.target_norm == "instance"):
        blocks = f"the mean of the teacher's last {t.target_layers} blocks" if t.target_layers > 1 else "the teacher's"
        norm = ", each channel normalised over an image's tokens" if t.target_norm == "instance" else ""
        out.append(f"targets from {blocks}{norm}")
    return "".join(f"; {x}" for x in out)
