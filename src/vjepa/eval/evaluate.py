"""Metrics of one run from its frozen features: kNN and linear-probe top-1/top-5, the head's
held-out distribution scores, and what produced them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vjepa.core.config import Config
from vjepa.core.errors import DataError
from vjepa.core.io import write_json
from vjepa.core.versions import versions
from vjepa.eval.knn import knn_accuracy
from vjepa.eval.probe import linear_probe

FEATURE_KEYS = ("train_features", "train_labels", "val_features", "val_labels")


def load_embeddings(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"embeddings '{path}' not found; run `vjepa embed` for this head first")
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:
        raise DataError(f"embeddings '{path}' cannot be read ({type(e).__name__}); rerun `vjepa embed`") from None
    missing = [k for k in FEATURE_KEYS if k not in arrays]
    if missing:
        raise DataError(f"embeddings '{path}' lack {', '.join(missing)}; rerun `vjepa embed`")
    return arrays


def evaluate(
    embeddings_path: str | Path,
    out_path: str | Path,
    cfg: Config,
    *,
    checkpoint_path: str | Path | None = None,
    data_dir: str | Path | None = None,
    eval_seed: int = 0,
    score_head: bool = True,
) -> dict:
    """kNN and probe on the embeddings file; when a checkpoint is given, what training reported
    (warnings, skipped steps, the loss parts' gradient shares) and, with `score_head` and the data
    folder, the head's held-out distribution metrics; writes metrics.json and returns it.
    `cfg.seed` is the training run's seed; `eval_seed` fixes the held-out masks and draws, so
    that every run is scored on the same tokens."""
    e = load_embeddings(embeddings_path)
    metrics = {
        "head": cfg.head_name,
        **feature_accuracy(e["train_features"], e["train_labels"], e["val_features"], e["val_labels"], cfg),
        **feature_spread(e["train_features"], e["train_labels"], e["val_features"], e["val_labels"], cfg),
        "knn": {
            "k": cfg.eval.knn_k,
            "temperature": cfg.eval.knn_temperature,
            "metric": "cosine",
            "vote": "exp(sim/T)",
            "features": "mean-pooled student tokens",
        },
        "n_train": int(len(e["train_labels"])),
        "n_val": int(len(e["val_labels"])),
        "embedding_dim": int(e["train_features"].shape[1]),
        "step": int(e["step"]) if "step" in e else None,
        "seed": cfg.seed,
        "eval_seed": eval_seed,
        "versions": versions(),
    }
    if checkpoint_path is not None:
        metrics.update(_from_checkpoint(checkpoint_path, Path(data_dir) if score_head else None, cfg, eval_seed))
    write_json(out_path, metrics)
    return metrics


def feature_accuracy(train_x, train_y, val_x, val_y, cfg: Config) -> dict:
    """How well frozen features classify: weighted kNN and the linear probe with the params' fixed
    budget (knn_top1/5, probe_top1/5, and how the probe was fitted). Every run, the floors and the
    masking sweep are scored by this one function."""
    knn = knn_accuracy(
        train_x,
        train_y,
        val_x,
        val_y,
        k=cfg.eval.knn_k,
        temperature=cfg.eval.knn_temperature,
        num_classes=cfg.data.num_classes,
    )
    probe = linear_probe(
        train_x,
        train_y,
        val_x,
        val_y,
        num_classes=cfg.data.num_classes,
        steps=cfg.eval.probe_steps,
        weight_decay=cfg.eval.probe_weight_decay,
    )
    return {
        "knn_top1": knn["top1"],
        "knn_top5": knn["top5"],
        "probe_top1": probe["top1"],
        "probe_top5": probe["top5"],
        "probe": {
            "train_top1": probe["train_top1"],
            "lbfgs_iterations": probe["steps"],
            "max_iterations": cfg.eval.probe_steps,
            "weight_decay": cfg.eval.probe_weight_decay,
            "model": "multinomial logistic regression on standardised features, full-batch L-BFGS",
        },
    }


def feature_spread(train_x, train_y, val_x, val_y, cfg: Config) -> dict:
    """How the frozen features are spread, beside what kNN makes of them: the effective rank of the
    centred training features (exp entropy of their normalised singular values) and the kNN top-1
    on PCA-whitened features (every direction given unit variance; the collapse-robust kNN). A large
    gap between whitened and plain kNN means a few directions dominate the cosine similarities."""
    import torch

    from vjepa.model.regularizers import effective_rank

    tr, va = np.asarray(train_x, dtype=np.float64), np.asarray(val_x, dtype=np.float64)
    mean = tr.mean(0)
    eig, vec = np.linalg.eigh(np.cov((tr - mean).T))
    white = vec / np.sqrt(np.maximum(eig, 1e-6 * eig.max()))
    acc = knn_accuracy(
        torch.from_numpy((tr - mean) @ white).float(),
        train_y,
        torch.from_numpy((va - mean) @ white).float(),
        val_y,
        k=cfg.eval.knn_k,
        temperature=cfg.eval.knn_temperature,
        num_classes=cfg.data.num_classes,
    )
    return {"knn_top1_whitened": acc["top1"], "effective_rank": effective_rank(torch.from_numpy(tr).float())}


def _from_checkpoint(checkpoint_path, data_dir: Path | None, cfg: Config, eval_seed: int) -> dict:
    """What training reported: warnings (e.g. collapse), steps skipped as non-finite, and the
    summary of the gradient shares its curve logged; with a data folder, the head's held-out
    metrics too."""
    from vjepa.model import checkpoint
    from vjepa.model.gradient_share import summary

    if data_dir is None:
        state = checkpoint.load(checkpoint_path)
    else:
        state, _, model = checkpoint.load_model(checkpoint_path, cfg)
    out = {
        "training_warnings": state.get("warnings", []),
        "skipped_steps": state.get("skipped_steps", []),
        "gradient_share": summary(state.get("curve", [])),
    }
    if data_dir is not None:
        from vjepa.core.runtime import pick_device
        from vjepa.data.sources import load_data_stats, load_split
        from vjepa.eval.head_metrics import head_metrics

        model.to(pick_device(cfg.train.device))
        images, _ = load_split(data_dir / "processed" / "val.npz")
        out["head_metrics"] = head_metrics(model, images, load_data_stats(data_dir), cfg, seed=eval_seed)
    return out
