"""Small helpers shared by the figures: PCA, the heads' display names, loading samples."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..summarize import DISPLAY_NAMES


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
        raise DataError(f"'{path}' not found; run `vjepa samples --head {head_dir.name}` first")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return (n + cols - 1) // cols, cols
