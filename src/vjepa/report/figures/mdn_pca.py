"""Figure 2: MDN component means, samples and teacher targets of one validation batch in 2-D PCA."""

from __future__ import annotations

import matplotlib.pyplot as plt

from vjepa.report.figures.common import load_samples, pca


def plot(ctx):
    s = load_samples(ctx.head_dir("mdn"))
    project = pca(s["targets"], 2)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    t = project(s["targets"])
    d = project(s["batch_draws"])
    m = project(s["mixture_means"].reshape(-1, s["targets"].shape[1]))
    ax.scatter(d[:, 0], d[:, 1], s=6, alpha=0.4, label="samples (one per token)", rasterized=True)
    ax.scatter(m[:, 0], m[:, 1], s=6, alpha=0.4, marker="x", label="component means", rasterized=True)
    ax.scatter(t[:, 0], t[:, 1], s=8, c="k", alpha=0.7, label="teacher targets", rasterized=True)
    ax.set_xlabel("PC 1 of the targets")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8, loc="upper left", framealpha=0.9)
    fig.tight_layout()
    return fig
