"""Figure 7: one row per head: 2-D PCA density of samples of one token with the teacher's
targets overlaid, and the 3-D PCA view."""
from __future__ import annotations

import matplotlib.pyplot as plt

from .common import load_samples, name
from .mdn_3d import scatter3d
from .mdn_hexbin import hexbin


def plot(ctx):
    n = len(ctx.heads)
    fig = plt.figure(figsize=(9, 3.6 * n))
    for i, head in enumerate(ctx.heads):
        s = load_samples(ctx.head_dir(head))
        ax = fig.add_subplot(n, 2, 2 * i + 1)
        hexbin(ax, s, ctx.figures["hexbin_gridsize"], f"{name(head)}: draws of one token")
        scatter3d(fig.add_subplot(n, 2, 2 * i + 2, projection="3d"), s, f"{name(head)}: 3-D PCA")
    fig.tight_layout()
    return fig
