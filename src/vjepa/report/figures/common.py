"""Small helpers shared by the figures: PCA, the heads' display names, loading samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vjepa.core.errors import DataError
from vjepa.report.summarize import DISPLAY_NAMES


def name(head: str) -> str:
    return DISPLAY_NAMES.get(head, head)


def pca(reference: np.ndarray, k: int):
    """Project onto the top-k principal axes of `reference` (rows = points); returns a function."""
    mean = reference.mean(0)
    _, _, vt = np.linalg.svd(reference - mean, full_matrices=False)
    axes = vt[:k]
    return lambda x: (np.asarray(x) - mean) @ axes.T


def load_samples(head_dir: Path) -> dict[str, np.ndarray]:
    path = head_dir / "samples.npz"
    if not path.is_file():
        raise DataError(f"'{path}' not found; run `vjepa samples --head {head_dir.parent.name}` first")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def mean_and_band(ax, curves: list[tuple[list[int], list[float]]], style: str = "-", **kw):
    """Plot the mean of several runs' curves over their common steps and shade min..max between
    runs (no band for a single run); returns (steps, mean) and the line."""
    curves = [(s, v) for s, v in curves if len(s)]
    if not curves:
        return ([], []), None
    common = sorted(set(curves[0][0]).intersection(*(set(s) for s, _ in curves[1:])))
    values = np.array([[dict(zip(s, v))[step] for step in common] for s, v in curves])
    mean = values.mean(0)
    (line,) = ax.plot(common, mean, style, **kw)
    if len(curves) > 1:
        ax.fill_between(common, values.min(0), values.max(0), color=line.get_color(), alpha=0.12, linewidth=0)
    return (common, mean), line


def grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return (n + cols - 1) // cols, cols
