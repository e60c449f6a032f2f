"""MDN diagnostics (the paper's TensorBoard panels): mixture entropy, weights and σ."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from vjepa.report.figures.common import load_samples


def plot(ctx):
    s = load_samples(ctx.head_dir("mdn"))
    w = s["mixture_weights"]
    entropy = -(w * np.log(np.clip(w, 1e-12, None))).sum(1)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].hist(entropy, bins=30)
    axes[0].axvline(np.log(w.shape[1]), color="k", ls="--", label=f"uniform over {w.shape[1]}")
    axes[0].set_xlabel("mixture entropy (nats)")
    axes[0].set_ylabel("tokens")
    axes[0].legend(fontsize=8)
    order = np.sort(w, axis=1)[:, ::-1]
    axes[1].boxplot([order[:, k] for k in range(w.shape[1])])
    axes[1].set_xlabel("component (sorted by weight, per token)")
    axes[1].set_ylabel("mixture weight")
    axes[2].hist(np.log10(s["mixture_sigmas"].ravel()), bins=50)
    axes[2].set_xlabel("log10 σ (all components and dimensions)")
    axes[2].set_ylabel("count")
    fig.tight_layout()
    return fig
