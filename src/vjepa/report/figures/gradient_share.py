"""kNN top-1 against the masked-token loss's share of the encoder's gradient: every head, every seed
as one point (the share is the run's mean over the second half of training, `vjepa.model.gradient_share`)."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt

from vjepa.core.errors import DataError
from vjepa.report.figures.common import name


def points(ctx, head: str) -> list[tuple[float, float]]:
    out = []
    for run in ctx.run_dirs(head):
        path = run / "metrics.json"
        if not path.is_file():
            raise DataError(f"'{path}' not found; run `vjepa evaluate` for this head and seed first")
        m = json.loads(path.read_text())
        share = (m.get("gradient_share") or {}).get("predict_share_second_half")
        if share is None:
            raise DataError(
                f"'{path}' has no gradient_share; retrain this head (the measurement is newer than the run)"
            )
        out.append((100 * share, 100 * m["knn_top1"]))
    return out


def plot(ctx):
    fig, ax = plt.subplots(figsize=(6.5, 4))
    shares = []
    for head in ctx.heads:
        pts = points(ctx, head)
        shares += [s for s, _ in pts]
        ax.plot([s for s, _ in pts], [k for _, k in pts], "o", markersize=6, alpha=0.8, label=name(head))
    if min(shares) > 0 and max(shares) / min(shares) > 20:  # shares that span decades: a log axis
        ax.set_xscale("log")
    ax.set_xlabel("masked-token loss's share of the encoder's gradient (%, second half of training)")
    ax.set_ylabel("validation kNN top-1 (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
