"""Figure 7: one row per head: 2-D PCA density of samples of one token with the teacher's
targets overlaid, and the 3-D PCA view."""
from __future__ import annotations

import matplotlib.pyplot as plt

from .common import load_samples, name, pca
from .mdn_3d import scatter3d
from .mdn_hexbin import hexbin


def plot(ctx):
    n = len(ctx.heads)
    fig = plt.figure(figsize=(9, 3.6 * n))
    for i, head in enumerate(ctx.heads):
        s = load_samples(ctx.head_dir(head))
        ax = fig.add_subplot(n, 2, 2 * i + 1)
        hexbin(ax, s, ctx.figures["hexbin_gridsize"], f"{name(head)}: one token")
        t = pca(s["targets"], 2)(s["targets"])
        ax.scatter(t[:, 0], t[:, 1], s=4, c="white", edgecolors="black", linewidths=0.3, alpha=0.6)
        scatter3d(fig.add_subplot(n, 2, 2 * i + 2, projection="3d"), s, f"{name(head)}: 3-D PCA")
    fig.tight_layout()
    return fig
