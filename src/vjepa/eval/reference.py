"""The floors every head is compared with: kNN and the linear probe on raw pixels and on the
untrained encoder.

Both use the shared model settings (no head overrides) and the same kNN and probe as
`evaluate`, so Table I can say how much each head's training added.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vjepa.core.config import Config
from vjepa.core.io import write_json
from vjepa.core.runtime import pick_device
from vjepa.core.versions import versions
from vjepa.data.augment import resize
from vjepa.data.sources import load_data_stats, load_split
from vjepa.eval.embed import extract_features, images_to_tensor
from vjepa.eval.evaluate import feature_accuracy
from vjepa.model.vit import VisionTransformer


def reference(cfg: Config, data_dir: str | Path, out_path: str | Path) -> dict:
    """Write {raw_pixels, random_init}: kNN top-1/top-5 and probe top-1/top-5 of each, to `out_path`
    and return it."""
    data_dir = Path(data_dir)
    device = pick_device(cfg.train.device)
    stats = load_data_stats(data_dir)
    splits = {s: load_split(data_dir / "processed" / f"{s}.npz", cfg.data.num_classes) for s in ("train", "val")}
    images = {s: images_to_tensor(x, device) for s, (x, _) in splits.items()}

    def scores(features: dict[str, torch.Tensor]) -> dict[str, float]:
        a = feature_accuracy(
            np.asarray(features["train"]), splits["train"][1], np.asarray(features["val"]), splits["val"][1], cfg
        )
        return {
            "top1": a["knn_top1"],
            "top5": a["knn_top5"],
            "probe_top1": a["probe_top1"],
            "probe_top5": a["probe_top5"],
        }

    pixels = {
        s: resize(x, cfg.data.image_size, stats["mean"], stats["std"]).flatten(1).float().cpu()
        for s, x in images.items()
    }
    m = cfg.model
    torch.manual_seed(cfg.seed)  # built first in JEPA, so these are every head's initial encoder weights
    encoder = VisionTransformer(cfg.data.image_size, m.patch_size, m.embed_dim, m.depth, m.num_heads, m.mlp_ratio).to(
        device
    )
    init = {
        s: extract_features(encoder, x, stats["mean"], stats["std"], cfg.data.image_size, cfg.eval.batch_size)
        for s, x in images.items()
    }
    result = {
        "raw_pixels": scores(pixels),
        "random_init": scores(init),
        "n_train": len(splits["train"][1]),
        "n_val": len(splits["val"][1]),
        "seed": cfg.seed,
        "versions": versions(),
    }
    write_json(out_path, result)
    return result
