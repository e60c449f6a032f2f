"""Frozen-encoder features: mean-pooled student patch tokens, float32.

Under torchrun every rank embeds its share of the images and rank 0 writes the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vjepa.core import distributed
from vjepa.core.io import write_npz
from vjepa.core.runtime import autocast, configure, progress_interval
from vjepa.data.augment import resize
from vjepa.data.sources import load_data_stats, load_split
from vjepa.model import checkpoint


def images_to_tensor(images: np.ndarray, device) -> torch.Tensor:
    """uint8 N×H×W×3 array → uint8 N×3×H×W tensor on `device`."""
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    if device.type == "cuda":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


@torch.no_grad()
def extract_features(
    encoder,
    images: torch.Tensor,
    mean,
    std,
    image_size: int,
    batch_size: int = 256,
    progress: bool = False,
    desc: str = "embed",
) -> torch.Tensor:
    """Mean-pooled final tokens of `encoder` for uint8 N×3×H×W images → float32 N×D on the CPU."""
    was_training = encoder.training
    encoder.eval()
    device = images.device
    out = []
    for start in tqdm(
        range(0, images.shape[0], batch_size),
        desc=desc,
        disable=not progress,
        leave=False,
        mininterval=progress_interval(),
    ):
        x = resize(images[start : start + batch_size], image_size, mean, std)
        with autocast(device):
            out.append(encoder(x).float().mean(dim=1).cpu())
    encoder.train(was_training)
    return torch.cat(out)


def extract_features_across_ranks(
    encoder,
    images: torch.Tensor,
    mean,
    std,
    image_size: int,
    batch_size: int = 256,
    progress: bool = False,
    desc: str = "embed",
) -> torch.Tensor:
    """`extract_features` of every image, each rank embedding its block (`distributed.split`);
    every rank gets the whole N×D result."""
    n = images.shape[0]
    share = images[distributed.split(n)]
    if len(share) == 0:  # fewer images than ranks: an empty block of the right width
        return distributed.gather_features(extract_features(encoder, images[:1], mean, std, image_size)[:0], n)
    own = extract_features(
        encoder, share, mean, std, image_size, batch_size, progress=progress and distributed.world().main, desc=desc
    )
    return distributed.gather_features(own, n)


def embed(
    ckpt_path,
    data_dir,
    out_path,
    *,
    random_init: bool = False,
    device: str = "auto",
    progress: bool = True,
    expect=None,
) -> dict:
    """Write train/val features of a checkpoint's student encoder (or of its random init) to `out_path`.
    With `expect` (the params' Config), a checkpoint of another head or architecture is refused and the
    params' `eval.batch_size` is used (the checkpoint's copy of it records the training run)."""
    state, cfg, model = checkpoint.load_model(ckpt_path, expect, random_init=random_init)
    dev = distributed.device(device)
    configure(dev)
    data_dir = Path(data_dir)
    stats = load_data_stats(data_dir)
    encoder = model.encoder.to(dev)
    arrays = {}
    for split in ("train", "val"):
        images, labels = load_split(data_dir / "processed" / f"{split}.npz", cfg.data.num_classes)
        x = images_to_tensor(images, dev)
        feats = extract_features_across_ranks(
            encoder,
            x,
            stats["mean"],
            stats["std"],
            cfg.data.image_size,
            (expect or cfg).eval.batch_size,
            progress=progress,
            desc=f"embed {split}",
        )
        arrays[f"{split}_features"] = feats.numpy()
        arrays[f"{split}_labels"] = labels.astype(np.int64)
    arrays["step"] = np.int64(0 if random_init else state["step"])
    if distributed.world().main:
        write_npz(out_path, **arrays)
    distributed.barrier()
    return {
        "n_train": len(arrays["train_labels"]),
        "n_val": len(arrays["val_labels"]),
        "dim": arrays["train_features"].shape[1],
        "step": int(arrays["step"]),
    }
