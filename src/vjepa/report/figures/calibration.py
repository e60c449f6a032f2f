"""Calibration of every head's predicted distributions on held-out tokens: PIT histograms (flat
for a calibrated head: ∪-shaped when too narrow, ∩-shaped when too wide) and interval coverage
against the nominal level. Read from each run's metrics.json, averaged over seeds."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np

from vjepa.core.errors import DataError
from vjepa.report.figures.common import grid, name


def head_scores(ctx, head: str) -> dict:
    """The head's PIT histogram and coverages, averaged over its seeds."""
    runs = []
    for run in ctx.run_dirs(head):
        path = run / "metrics.json"
        if not path.is_file():
            raise DataError(f"'{path}' not found; run `vjepa evaluate --head {head}` for every seed first")
        hm = json.loads(path.read_text()).get("head_metrics") or {}
        if "pit_histogram" not in hm:
            raise DataError(f"'{path}' has no distribution scores; rerun `vjepa evaluate --head {head}`")
        runs.append(hm)
    return {
        "pit": np.mean([r["pit_histogram"] for r in runs], axis=0),
        "coverage": {level: float(np.mean([r[f"coverage_{level}"] for r in runs])) for level in (50, 90)},
    }


def plot(ctx):
    scores = {head: head_scores(ctx, head) for head in ctx.heads}
    rows, cols = grid(len(ctx.heads) + 1)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, (head, s) in zip(axes.flat, scores.items()):
        bins = len(s["pit"])
        density = np.asarray(s["pit"]) * bins  # fractions → density: 1 everywhere when uniform
        ax.bar((np.arange(bins) + 0.5) / bins, density, width=1 / bins, color="tab:blue", alpha=0.7)
        ax.axhline(1.0, color="k", linestyle="--", linewidth=1)
        ax.set_title(name(head), fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_xlabel("PIT")
        ax.set_ylabel("density")
    ax = axes.flat[len(scores)]
    for head, s in scores.items():
        ax.plot(
            [0, 50, 90, 100],
            [0, 100 * s["coverage"][50], 100 * s["coverage"][90], 100],
            "o-",
            markersize=4,
            label=name(head),
        )
    ax.plot([0, 100], [0, 100], "k--", linewidth=1)
    ax.set_xlabel("nominal interval (%)")
    ax.set_ylabel("coverage (%)")
    ax.set_title("interval coverage", fontsize=10)
    ax.legend(fontsize=7)
    for extra in list(axes.flat)[len(scores) + 1 :]:
        extra.axis("off")
    fig.tight_layout()
    return fig
