"""Figure 3: validation kNN top-1 over training for every head, final values annotated."""
from __future__ import annotations

import csv

import matplotlib.pyplot as plt

from ..errors import DataError
from .common import name


def plot(ctx):
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for head in ctx.heads:
        path = ctx.head_dir(head) / "knn_curve.csv"
        if not path.is_file():
            raise DataError(f"'{path}' not found; train head {head} first")
        rows = list(csv.DictReader(path.open()))
        if not rows:
            continue
        steps = [int(r["step"]) for r in rows]
        top1 = [100 * float(r["knn_top1"]) for r in rows]
        line, = ax.plot(steps, top1, "o-", markersize=3, label=name(head))
        ax.annotate(f"{top1[-1]:.1f}", (steps[-1], top1[-1]), textcoords="offset points", xytext=(4, 0),
                    fontsize=8, color=line.get_color(), va="center")
    ax.set_xlabel("step")
    ax.set_ylabel("validation kNN top-1 (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
