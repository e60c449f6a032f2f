"""Figure 3: validation kNN top-1 over training for every head (mean over seeds, min..max band),
final means annotated."""

from __future__ import annotations

import csv

import matplotlib.pyplot as plt

from vjepa.core.errors import DataError
from vjepa.report.figures.common import mean_and_band, name


def curve(path) -> tuple[list[int], list[float]]:
    if not path.is_file():
        raise DataError(f"'{path}' not found; train this head and seed first")
    rows = list(csv.DictReader(path.open()))
    return [int(r["step"]) for r in rows], [100 * float(r["knn_top1"]) for r in rows]


def plot(ctx):
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for head in ctx.heads:
        curves = [curve(run / "knn_curve.csv") for run in ctx.run_dirs(head)]
        (steps, top1), line = mean_and_band(ax, curves, "o-", markersize=3, label=name(head))
        if line is not None:
            ax.annotate(
                f"{top1[-1]:.1f}",
                (steps[-1], top1[-1]),
                textcoords="offset points",
                xytext=(4, 0),
                fontsize=8,
                color=line.get_color(),
                va="center",
            )
    ax.set_xlabel("step")
    ax.set_ylabel("validation kNN top-1 (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
