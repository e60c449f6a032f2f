"""The masking ablation (the paper's future work): how the target blocks' area and number shape
the learned features.

Each point of `ablation` in params trains `ablation.head` with `mask.target_scale = [area, area]`
and `mask.num_targets = blocks` (config.ablation_config), then scores the frozen encoder with the
same kNN and linear probe as `evaluate`. A point's run lives in results/ablation/NAME/ and its
scores in results/ablation/NAME.json.
"""

from __future__ import annotations

from pathlib import Path

from vjepa.core import audit
from vjepa.core.config import ablation_config, ablation_point_name, ablation_points
from vjepa.core.errors import ConfigError
from vjepa.core.io import exclusive_use, write_json
from vjepa.core.versions import versions
from vjepa.eval.embed import embed
from vjepa.eval.evaluate import feature_accuracy, load_embeddings


def run_point(
    params: dict, area: float, blocks: int, data_dir: str | Path, results_dir: str | Path, *, progress: bool = True
) -> dict:
    """Train, embed and score one point of the sweep; writes results/ablation/NAME.json and returns it."""
    from vjepa.training.train import train

    with audit.paused():  # checking the command line against the sweep decides nothing about this point
        known = ablation_points(params)
    if (area, blocks) not in known:
        raise ConfigError(
            f"area {area}, {blocks} blocks is not a point of the sweep in params (ablation.target_area "
            f"x ablation.num_targets: {known})"
        )
    cfg = ablation_config(params, area, blocks)
    name = ablation_point_name(area, blocks)
    out = Path(results_dir) / "ablation" / name
    with exclusive_use(out, f"`vjepa ablate --area {area} --blocks {blocks}`"):
        result = train(cfg, data_dir, out, progress=progress)
        embed(out / "checkpoint.pt", data_dir, out / "embeddings.npz", progress=progress, expect=cfg)
    e = load_embeddings(out / "embeddings.npz")
    a = feature_accuracy(e["train_features"], e["train_labels"], e["val_features"], e["val_labels"], cfg)
    metrics = {
        "head": cfg.head_name,
        "target_area": area,
        "num_targets": blocks,
        "step": result["step"],
        **{k: a[k] for k in ("knn_top1", "knn_top5", "probe_top1", "probe_top5")},
        "seed": cfg.seed,
        "versions": versions(),
    }
    write_json(Path(results_dir) / "ablation" / f"{name}.json", metrics)
    return metrics
