"""One module per figure of the report; each exposes `plot(ctx) -> matplotlib Figure`.

`ctx` is a `FigureContext`: the params, the heads, and where the pipeline's outputs are.
Figures only read files the pipeline wrote (TensorBoard events, curves, samples.npz,
the prepared data); `render` saves PDF (for the report) and PNG (for a quick look).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from vjepa.core.io import atomic_path, run_dir

# name -> (module, one-line caption); the MDN figures exist only when `mdn` is among the heads.
FIGURES = {
    "losses": (
        "losses",
        "Training and validation loss of every head's predictor head over training steps "
        "(mean over seeds; the band spans the lowest and highest seed).",
    ),
    "mdn_pca": ("mdn_pca", "MDN: PCA of component means, samples and teacher targets for one validation batch."),
    "knn": (
        "knn",
        "Validation kNN top-1 over training for every head: mean over seeds, the band spanning the "
        "lowest and highest seed (final means annotated).",
    ),
    "mdn_hexbin": ("mdn_hexbin", "MDN: samples of one target token in the 2-D PCA plane of the teacher targets."),
    "mdn_3d": ("mdn_3d", "MDN: the same samples in an isometric 3-D PCA view."),
    "masks": ("masks", "The masking policy on validation images: context (green) and targets (red)."),
    "heads_grid": (
        "heads_grid",
        "Every head's samples (2-D PCA density, teacher targets overlaid) and a 3-D PCA view.",
    ),
    "mdn_diagnostics": ("mdn_diagnostics", "MDN diagnostics: mixture entropy, mixture weights and σ distribution."),
    "calibration": (
        "calibration",
        "Calibration on held-out target tokens: PIT histograms of every head (flat when "
        "calibrated; U-shaped when too narrow, hump-shaped when too wide; dashed: uniform) "
        "and the coverage of central intervals against their nominal level.",
    ),
    "gradient_share": (
        "gradient_share",
        "Validation kNN top-1 against the masked-token loss's share of the "
        "encoder's gradient (mean over the second half of training): every head, "
        "every seed as one point.",
    ),
    "masking_ablation": (
        "masking_ablation",
        "Masking ablation: validation kNN and linear-probe top-1 of one head "
        "trained with each target block area and number of target blocks "
        "(the sweep in the params' ablation section).",
    ),
}
MDN_FIGURES = ("mdn_pca", "mdn_hexbin", "mdn_3d", "mdn_diagnostics")


def figure_names(heads: list[str]) -> list[str]:
    return [n for n in FIGURES if n not in MDN_FIGURES or "mdn" in heads]


@dataclass(frozen=True)
class FigureContext:
    params: dict
    data_dir: Path
    results_dir: Path

    @property
    def heads(self) -> list[str]:
        return list(self.params["heads"])

    @property
    def figures(self) -> dict:
        return self.params["figures"]

    @property
    def seeds(self) -> list[int]:
        return list(self.params["seeds"])

    def head_dir(self, head: str) -> Path:
        """The head's run for the first seed: the one whose samples the figures show."""
        return run_dir(self.results_dir, head, self.seeds[0])

    def run_dirs(self, head: str) -> list[Path]:
        """The head's runs, one per seed (curves are drawn as mean and spread over them)."""
        return [run_dir(self.results_dir, head, seed) for seed in self.seeds]


def render(name: str, ctx: FigureContext, out_dir: str | Path) -> list[Path]:
    """Plot figure `name` and write out_dir/name.pdf and .png; returns the two paths."""
    # matplotlib is imported here, not with the package: the pipeline reads FIGURES at start-up.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    module = importlib.import_module(f".{FIGURES[name][0]}", __name__)
    fig = module.plot(ctx)
    paths = []
    for ext in ("pdf", "png"):
        path = Path(out_dir) / f"{name}.{ext}"
        with atomic_path(path, suffix=f".{ext}") as tmp:
            fig.savefig(tmp, dpi=ctx.figures["dpi"], bbox_inches="tight", format=ext)
        paths.append(path)
    plt.close(fig)
    return paths
