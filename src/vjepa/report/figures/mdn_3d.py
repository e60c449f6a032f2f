"""Figure 5: the MDN samples of one token in an isometric 3-D PCA view."""

from __future__ import annotations

import matplotlib.pyplot as plt

from vjepa.report.figures.common import load_samples, pca


def scatter3d(ax, s, title: str):
    project = pca(s["targets"], 3)
    d = project(s["token_draws"])
    t = project(s["token_target"][None])
    ax.scatter(d[:, 0], d[:, 1], d[:, 2], s=4, alpha=0.5, c=d[:, 2], cmap="viridis", rasterized=True)
    ax.scatter(t[:, 0], t[:, 1], t[:, 2], marker="*", s=120, c="red")
    ax.view_init(elev=35.264, azim=45)  # isometric
    ax.set_xlabel("PC 1", fontsize=8)
    ax.set_ylabel("PC 2", fontsize=8)
    ax.set_zlabel("PC 3", fontsize=8)
    ax.set_title(title, fontsize=9)


def plot(ctx):
    s = load_samples(ctx.head_dir("mdn"))
    fig = plt.figure(figsize=(5.5, 5))
    scatter3d(fig.add_subplot(projection="3d"), s, f"{len(s['token_draws'])} MDN samples (red: teacher target)")
    fig.tight_layout()
    return fig
