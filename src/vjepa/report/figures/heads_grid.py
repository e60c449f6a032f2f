"""Figure 7: every head's draws of one token: a 2-D PCA density with the teacher's targets
overlaid, and the 3-D PCA view beside it; two heads per row, so the page's width is used."""

from __future__ import annotations

import matplotlib.pyplot as plt

from vjepa.report.figures.common import load_samples, name
from vjepa.report.figures.mdn_3d import scatter3d
from vjepa.report.figures.mdn_hexbin import hexbin

HEADS_PER_ROW = 2


def plot(ctx):
    n = len(ctx.heads)
    rows = (n + HEADS_PER_ROW - 1) // HEADS_PER_ROW
    cols = 2 * min(n, HEADS_PER_ROW)
    fig = plt.figure(figsize=(3.6 * cols, 3.5 * rows))
    for i, head in enumerate(ctx.heads):
        s = load_samples(ctx.head_dir(head))
        hexbin(
            fig.add_subplot(rows, cols, 2 * i + 1),
            s,
            ctx.figures["hexbin_gridsize"],
            f"{name(head)}: draws of one token",
        )
        scatter3d(fig.add_subplot(rows, cols, 2 * i + 2, projection="3d"), s, f"{name(head)}: 3-D PCA")
    fig.tight_layout()
    return fig
