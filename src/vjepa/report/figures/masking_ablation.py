"""The masking ablation: kNN and linear-probe top-1 of the frozen encoder over the sweep's target
block area (rows) and number of blocks (columns), one heat map each, values annotated."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np

from vjepa.core.config import ablation_grid, ablation_point_name
from vjepa.core.errors import DataError
from vjepa.report.figures.common import name


def plot(ctx):
    areas, blocks = ablation_grid(ctx.params)
    grids = {key: np.full((len(areas), len(blocks)), np.nan) for key in ("knn_top1", "probe_top1")}
    for i, area in enumerate(areas):
        for j, n in enumerate(blocks):
            path = ctx.results_dir / "ablation" / f"{ablation_point_name(area, n)}.json"
            if not path.is_file():
                raise DataError(f"'{path}' not found; run `vjepa ablate --area {area} --blocks {n}` first")
            m = json.loads(path.read_text())
            for key in grids:
                grids[key][i, j] = 100 * m[key]
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.2 * len(blocks), 2.2 + 0.6 * len(areas)), squeeze=False)
    for ax, (key, title) in zip(axes.flat, (("knn_top1", "kNN top-1 (%)"), ("probe_top1", "linear probe top-1 (%)"))):
        values = grids[key]
        im = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower")
        for (i, j), v in np.ndenumerate(values):
            ax.text(
                j,
                i,
                f"{v:.1f}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if v < np.nanmean(values) else "black",
            )
        ax.set_xticks(range(len(blocks)), [str(b) for b in blocks])
        ax.set_yticks(range(len(areas)), [f"{a:g}" for a in areas])
        ax.set_xlabel("target blocks")
        ax.set_ylabel("area per block")
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    head, steps = ctx.params["ablation"]["head"], ctx.params["ablation"]["steps"]
    fig.suptitle(
        f"masking ablation: {name(head)} head, {steps} steps per point (area: fraction of the image)", fontsize=10
    )
    fig.tight_layout()
    return fig
