"""Figure 1: training and validation loss of every head, read from its runs' TensorBoard events
(mean over seeds, min..max band)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vjepa.core.errors import DataError
from vjepa.report.figures.common import grid, mean_and_band, name


def scalars(tb_dir, tag: str) -> tuple[list[int], list[float]]:
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return [], []
    events = acc.Scalars(tag)
    return [e.step for e in events], [e.value for e in events]


def plot(ctx):
    rows, cols = grid(len(ctx.heads))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, head in zip(axes.flat, ctx.heads):
        tbs = [run / "tb" for run in ctx.run_dirs(head)]
        for tb in tbs:
            if not tb.is_dir():
                raise DataError(f"'{tb}' not found; train head {head} for every seed first")
        # The head's own loss on both sides (training adds the shared collapse penalty to it).
        for tag, label, style in (("train/head_loss", "train", "-"), ("val/loss", "validation", "o-")):
            mean_and_band(ax, [scalars(tb, tag) for tb in tbs], style, label=label, markersize=3)
        ax.set_title(name(head))
        ax.set_xlabel("step")
        ax.set_ylabel("head loss")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(ctx.heads) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig
