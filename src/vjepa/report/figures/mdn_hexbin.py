"""Figure 4: many MDN samples of one target token, 2-D PCA hexbin density."""

from __future__ import annotations

import matplotlib.pyplot as plt

from vjepa.report.figures.common import load_samples, pca


def hexbin(ax, s, gridsize: int, title: str):
    """Density of the token's draws in the PCA plane of the batch's teacher targets, with the
    batch's targets (grey), this token's target (red star) and the point prediction (black x)."""
    project = pca(s["targets"], 2)
    d = project(s["token_draws"])
    t = project(s["token_target"][None])
    p = project(s["points"][:1])
    others = project(s["targets"])
    ax.scatter(others[:, 0], others[:, 1], s=3, c="0.6", alpha=0.5, label="batch targets", rasterized=True)
    hb = ax.hexbin(d[:, 0], d[:, 1], gridsize=gridsize, cmap="viridis", mincnt=1)
    ax.scatter(t[:, 0], t[:, 1], marker="*", s=140, c="red", edgecolors="white", label="teacher target")
    ax.scatter(p[:, 0], p[:, 1], marker="x", s=60, c="black", label="point prediction")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=7, loc="upper right")
    return hb


def plot(ctx):
    s = load_samples(ctx.head_dir("mdn"))
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    hb = hexbin(ax, s, ctx.figures["hexbin_gridsize"], f"{len(s['token_draws'])} MDN samples of one token")
    fig.colorbar(hb, ax=ax, label="samples per cell")
    fig.tight_layout()
    return fig
