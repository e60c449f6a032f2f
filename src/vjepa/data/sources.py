"""Data sources -> prepared uint8 arrays (train.npz / val.npz), and per-channel normalisation stats.

Prepared files hold `images` (uint8, N x H x W x 3), `labels` (int64, N) and `classes`
(str, class names indexed by label).
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vjepa.core.errors import DataError
from vjepa.core.io import file_digest, write_json, write_npz

SOURCES = ("digits", "tiny-imagenet", "imagefolder")
HUB_DATASET = "zh-plus/tiny-imagenet"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
MAX_BAD_FRACTION = 0.10

# Errors PIL raises for unreadable, truncated or hostile image files.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)

Splits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]


# --------------------------------------------------------------------------- prepare


def prepare(
    source: str,
    out_dir: str | os.PathLike,
    *,
    image_size: int,
    num_classes: int | None,
    path: str | None,
    val_fraction: float,
    split_seed: int,
) -> dict:
    """Build `out_dir/train.npz` and `out_dir/val.npz` from `source`; return a summary."""
    _validate(source, image_size, num_classes, path, val_fraction, split_seed)
    if source == "digits":
        splits = _digits(image_size, num_classes, val_fraction, split_seed)
    elif source == "tiny-imagenet":
        splits = _tiny_imagenet(image_size, num_classes, path)
    else:
        splits = _imagefolder(Path(path), image_size, num_classes, val_fraction, split_seed)
    x_tr, y_tr, x_va, y_va, classes = splits

    out_dir = Path(out_dir)
    names = np.array(classes, dtype=str)
    write_npz(out_dir / "train.npz", images=x_tr, labels=y_tr, classes=names)
    write_npz(out_dir / "val.npz", images=x_va, labels=y_va, classes=names)
    return {
        "source": source,
        "image_size": image_size,
        "num_classes": len(classes),
        "n_train": int(len(y_tr)),
        "n_val": int(len(y_va)),
    }


def _validate(
    source: str, image_size: int, num_classes: int | None, path: str | None, val_fraction: float, split_seed: int
) -> None:
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r}; data.source must be one of {', '.join(SOURCES)}")
    if not _is_int(image_size) or image_size < 1:
        raise DataError(f"data.image_size must be a positive integer, got {image_size!r}")
    if num_classes is not None and (not _is_int(num_classes) or num_classes < 1):
        raise DataError(f"data.num_classes must be a positive integer or null, got {num_classes!r}")
    if source == "digits" and num_classes is not None and num_classes > 10:
        raise DataError(f"the digits source has 10 classes; set data.num_classes <= 10 (got {num_classes})")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        raise DataError(f"data.val_fraction must be a number strictly between 0 and 1, got {val_fraction!r}")
    if not _is_int(split_seed) or split_seed < 0:
        raise DataError(f"data.split_seed must be a non-negative integer, got {split_seed!r}")
    if source == "imagefolder" and path is None:
        raise DataError("the imagefolder source needs a folder: set data.path to a folder of class sub-folders")
    if source != "digits" and path is not None and not Path(path).is_dir():
        raise DataError(f"data folder {path} does not exist or is not a folder; fix the data.path params key")


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _stratified_split(
    n: int, labels: np.ndarray, val_fraction: float, split_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(np.arange(n), test_size=val_fraction, random_state=split_seed, stratify=labels)
    except ValueError as e:
        raise DataError(
            f"cannot make a stratified train/val split with data.val_fraction={val_fraction}: "
            f"{e}; add images to the small classes or change data.val_fraction"
        ) from e


# --------------------------------------------------------------------------- sources


def _digits(image_size: int, num_classes: int | None, val_fraction: float, split_seed: int) -> Splits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x8 = bunch.images.astype(np.float32) * (255.0 / 16.0)  # values 0..16 -> 0..255
    y = bunch.target.astype(np.int64)
    nc = 10 if num_classes is None else num_classes
    keep = y < nc
    x8, y = x8[keep], y[keep]

    up = np.empty((len(x8), image_size, image_size), dtype=np.uint8)
    for i, img in enumerate(x8):
        if image_size == 8:
            big = img
        else:  # mode "F" keeps the interpolation in float, so there is one rounding at the end
            big = np.asarray(Image.fromarray(img).resize((image_size, image_size), Image.BILINEAR))
        up[i] = np.clip(np.rint(big), 0, 255).astype(np.uint8)
    images = np.repeat(up[..., None], 3, axis=-1)

    tr, va = _stratified_split(len(y), y, val_fraction, split_seed)
    return images[tr], y[tr], images[va], y[va], [str(c) for c in range(nc)]


def _tiny_imagenet(image_size: int, num_classes: int | None, path: str | None) -> Splits:
    if path is None:
        train, val = _hub_splits(image_size, num_classes)
    else:
        folder = _parquet_folder(Path(path))
        train = _decode_table(_read_parquet(folder, "train"), image_size, num_classes, "train")
        val = _decode_table(_read_parquet(folder, "valid"), image_size, num_classes, "valid")
    (x_tr, y_tr), (x_va, y_va) = train, val
    nc = num_classes if num_classes is not None else int(max(y_tr.max(), y_va.max())) + 1
    missing = sorted(set(range(nc)) - set(np.unique(y_tr).tolist()))
    if missing:
        raise DataError(
            f"tiny-imagenet train split has no images for labels {missing[:10]}; "
            f"lower data.num_classes (got {num_classes}) or check the data files"
        )
    return x_tr, y_tr, x_va, y_va, [str(c) for c in range(nc)]


def _hub_splits(image_size: int, num_classes: int | None):
    try:
        import datasets

        ds = datasets.load_dataset(HUB_DATASET)
        train_split, val_split = ds["train"], ds["valid"]
    except Exception as e:  # network, auth, cache and import problems all surface differently
        raise DataError(
            f"could not load {HUB_DATASET} from the Hugging Face hub ({type(e).__name__}: {e}); "
            "without network access, download its parquet files and point data.path at the "
            "folder holding train.parquet and valid.parquet (or train-*/valid-* shards)"
        ) from e
    return (
        _convert_hub_split(train_split, image_size, num_classes, "train"),
        _convert_hub_split(val_split, image_size, num_classes, "valid"),
    )


def _convert_hub_split(
    split: Any, image_size: int, num_classes: int | None, name: str
) -> tuple[np.ndarray, np.ndarray]:
    # A datasets.Dataset exposes its Arrow table, whose image column is the same {bytes, path}
    # struct as the parquet files: this avoids decoding the images twice through PIL.
    import datasets

    if isinstance(split, datasets.Dataset):
        return _decode_table(split.with_format("arrow")[:], image_size, num_classes, name)
    rows = [(row["image"], int(row["label"])) for row in split]
    kept = [(img, lab) for img, lab in rows if num_classes is None or lab < num_classes]
    if not kept:
        raise DataError(f"the {name} split of {HUB_DATASET} has no images with label < {num_classes}")
    labels = np.array([lab for _, lab in kept], dtype=np.int64)
    images = _decode_all((img for img, _ in kept), len(kept), image_size, f"decode {name}")
    return images, labels


def _parquet_folder(folder: Path) -> Path:
    # A Hugging Face snapshot keeps its shards under data/; accept either folder.
    if not _parquet_files(folder, "train") and _parquet_files(folder / "data", "train"):
        return folder / "data"
    return folder


def _parquet_files(folder: Path, split: str) -> list[Path]:
    single = folder / f"{split}.parquet"
    if single.is_file():
        return [single]
    return sorted(folder.glob(f"{split}-*.parquet"))


def _read_parquet(folder: Path, split: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = _parquet_files(folder, split)
    if not files:
        raise DataError(
            f"no {split}.parquet or {split}-*.parquet files in {folder}; "
            "point data.path at the folder holding the tiny-imagenet parquet files"
        )
    tables = []
    for f in files:
        try:
            table = pq.read_table(f)
        except (OSError, pa.ArrowException) as e:
            raise DataError(f"cannot read parquet file {f} ({e}); re-download it") from e
        if "image" not in table.column_names or "label" not in table.column_names:
            raise DataError(
                f"parquet file {f} lacks an 'image' or 'label' column "
                f"(has {table.column_names}); expected Hugging Face's tiny-imagenet schema"
            )
        tables.append(table.select(["image", "label"]))
    try:
        return pa.concat_tables(tables)
    except pa.ArrowException as e:
        raise DataError(f"the {split} parquet files in {folder} have different schemas: {e}") from e


def _decode_table(table, image_size: int, num_classes: int | None, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode an Arrow table with an image struct column {bytes, path} and an int label column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_integer(table.schema.field("label").type):
        raise DataError(
            f"the {name} split's label column is {table.schema.field('label').type}, expected integer class indices"
        )
    if num_classes is not None:
        table = table.filter(pc.less(table.column("label"), num_classes))
    if table.num_rows == 0:
        raise DataError(f"the {name} split has no images with label < {num_classes}; check the data files")
    labels = table.column("label").to_numpy().astype(np.int64)
    if labels.min() < 0:
        raise DataError(f"the {name} split has negative labels; expected class indices 0..K-1")

    def cells() -> Iterable[dict]:
        for batch in table.column("image").chunks:  # batch-wise keeps peak memory to one chunk
            yield from batch.to_pylist()

    images = _decode_all(cells(), table.num_rows, image_size, f"decode {name}")
    return images, labels


def _imagefolder(root: Path, image_size: int, num_classes: int | None, val_fraction: float, split_seed: int) -> Splits:
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir() and val_dir.is_dir():
        classes = _class_names(train_dir)
        extra = sorted(set(_class_names(val_dir)) - set(classes))
        if extra:
            raise DataError(
                f"{val_dir} has class folders missing from {train_dir}: {extra[:10]}; "
                "every val class must also be a train class"
            )
        classes = _limit_classes(classes, num_classes, train_dir)
        tr_files = _list_images(train_dir, classes, require_all=True)
        va_files = _list_images(val_dir, classes, require_all=False)
        images, labels, kept = _decode_files(tr_files + va_files, image_size, root)
        is_train = np.arange(len(kept)) < len(tr_files)
        is_train = is_train[kept]
        tr, va = np.flatnonzero(is_train), np.flatnonzero(~is_train)
        if len(va) == 0:
            raise DataError(f"{val_dir} holds no readable images for the selected classes")
    else:
        classes = _limit_classes(_class_names(root), num_classes, root)
        images, labels, _ = _decode_files(_list_images(root, classes, require_all=True), image_size, root)
        tr, va = _stratified_split(len(labels), labels, val_fraction, split_seed)
    return images[tr], labels[tr], images[va], labels[va], classes


def _class_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist; fix the data.path params key")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(
            f"image folder {folder} has no class sub-folders; data.path must hold one sub-folder of images per class"
        )
    return names


def _limit_classes(classes: list[str], num_classes: int | None, folder: Path) -> list[str]:
    if num_classes is None:
        return classes
    if num_classes > len(classes):
        raise DataError(f"data.num_classes={num_classes} but {folder} has only {len(classes)} class folders")
    return classes[:num_classes]


def _list_images(folder: Path, classes: list[str], *, require_all: bool) -> list[tuple[Path, int]]:
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        found = (
            sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if class_dir.is_dir()
            else []
        )
        if require_all and not found:
            raise DataError(
                f"class folder {class_dir} holds no images "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove the folder"
            )
        files.extend((p, label) for p in found)
    return files


def _decode_files(
    files: list[tuple[Path, int]], image_size: int, root: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode image files, skipping unreadable ones; returns (images, labels, kept mask over `files`)."""
    images = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)
    kept = np.zeros(len(files), dtype=bool)
    bad: list[Path] = []
    for i, (p, _) in enumerate(_progress(files, len(files), "decode images")):
        try:
            with Image.open(p) as img:
                images[i] = _to_rgb_array(img, image_size)
            kept[i] = True
        except _DECODE_ERRORS:
            bad.append(p)
    if bad:
        msg = f"skipped {len(bad)} of {len(files)} unreadable image files under {root} (e.g. {bad[0]})"
        if len(bad) > MAX_BAD_FRACTION * len(files):
            raise DataError(
                msg + f"; more than {MAX_BAD_FRACTION:.0%} are unreadable, so the folder "
                "looks broken: re-copy or re-download it"
            )
        warnings.warn(msg, stacklevel=3)
    labels = np.array([lab for _, lab in files], dtype=np.int64)
    return images[kept], labels[kept], kept


# --------------------------------------------------------------------------- image decoding


def _decode_all(items: Iterable[Any], n: int, image_size: int, desc: str) -> np.ndarray:
    out = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    for i, item in enumerate(_progress(items, n, desc)):
        try:
            out[i] = _to_rgb_array(_open_image(item), image_size)
        except _DECODE_ERRORS as e:
            raise DataError(
                f"{desc}: image {i} cannot be decoded ({e}); the data files look corrupt, re-download them"
            ) from e
    return out


def _open_image(item: Any) -> Image.Image:
    """Accept a PIL image, raw bytes or a Hugging Face {bytes, path} dict."""
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, (bytes, bytearray)):
        return Image.open(io.BytesIO(item))
    if isinstance(item, dict):
        if item.get("bytes") is not None:
            return Image.open(io.BytesIO(item["bytes"]))
        if item.get("path"):
            return Image.open(item["path"])
    raise DataError(
        f"unsupported image value of type {type(item).__name__}; expected a PIL image or a {{bytes, path}} struct"
    )


def _to_rgb_array(img: Image.Image, size: int) -> np.ndarray:
    """RGB, shorter side resized to `size`, then center-cropped to size x size."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8)


def _progress(items: Iterable[Any], total: int, desc: str) -> Iterable[Any]:
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, leave=False, disable=not sys.stderr.isatty())


# --------------------------------------------------------------------------- prepared files


def load_split(npz_path: str | os.PathLike, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load (images uint8 N x H x W x 3, labels int64 N) from a prepared file; with `num_classes`,
    every label must be a class index below it."""
    path = Path(npz_path)
    if not path.is_file():
        raise DataError(f"prepared data file {path} does not exist; run `vjepa prepare` first")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "images" not in f.files or "labels" not in f.files:
                raise DataError(
                    f"prepared data file {path} lacks 'images' or 'labels' (has {f.files}); "
                    "delete it and run `vjepa prepare` again"
                )
            images, labels = f["images"], f["labels"]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(
            f"prepared data file {path} is unreadable or corrupt ({e}); delete it and run `vjepa prepare` again"
        ) from e
    problem = _split_problem(images, labels)
    if not problem and len(labels) and (labels.min() < 0 or (num_classes and labels.max() >= num_classes)):
        problem = (
            f"labels range over {labels.min()}..{labels.max()}, outside the class indices 0.."
            f"{(num_classes or 1) - 1} of data.num_classes = {num_classes}"
        )
    if problem:
        raise DataError(f"prepared data file {path} is malformed: {problem}; delete it and run `vjepa prepare` again")
    return images, labels


def _split_problem(images: np.ndarray, labels: np.ndarray) -> str | None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        return f"images must be uint8 N x H x W x 3, got {images.dtype} {images.shape}"
    if images.shape[1] != images.shape[2]:
        return f"images must be square, got {images.shape[1]} x {images.shape[2]}"
    if labels.dtype != np.int64 or labels.ndim != 1 or len(labels) != len(images):
        return f"labels must be int64 of length {len(images)}, got {labels.dtype} {labels.shape}"
    return None


# --------------------------------------------------------------------------- normalisation stats


def compute_stats(
    train_npz: str | os.PathLike, out_json: str | os.PathLike, *, subsample: int = 2000, seed: int = 0
) -> dict:
    """Per-channel mean/std of train images in [0, 1] on a seeded subsample; written to `out_json`."""
    if not _is_int(subsample) or subsample < 1:
        raise DataError(f"data.stats_subsample must be a positive integer, got {subsample!r}")
    images, _ = load_split(train_npz)
    n = len(images)
    if n == 0:
        raise DataError(f"prepared data file {train_npz} holds no images; run `vjepa prepare` again")
    n_used = min(subsample, n)
    idx = np.arange(n) if n_used == n else np.sort(np.random.default_rng(seed).choice(n, size=n_used, replace=False))
    mean, std = _channel_mean_std(images, idx)
    stats = {
        "mean": mean,
        "std": std,
        "subsample": int(n_used),
        "seed": int(seed),
        "n_images": int(n),
        "image_size": int(images.shape[1]),
        "train_sha256": file_digest(train_npz, "sha256"),
    }
    write_json(out_json, stats)
    return stats


def _channel_mean_std(images: np.ndarray, idx: np.ndarray, chunk: int = 256) -> tuple[list[float], list[float]]:
    # Chunked float64 sums keep memory small and the result exact enough for uint8 inputs.
    total = np.zeros(3)
    total_sq = np.zeros(3)
    for start in range(0, len(idx), chunk):
        x = images[idx[start : start + chunk]].astype(np.float64) / 255.0
        total += x.sum(axis=(0, 1, 2))
        total_sq += np.square(x).sum(axis=(0, 1, 2))
    count = len(idx) * images.shape[1] * images.shape[2]
    mean = total / count
    var = np.maximum(total_sq / count - mean**2, 0.0)
    return [float(m) for m in mean], [float(s) for s in np.sqrt(var)]


def load_data_stats(data_dir: str | os.PathLike) -> dict:
    """data_dir/stats.json, checked to be the stats of data_dir/processed/train.npz as it is now."""
    data_dir = Path(data_dir)
    return load_stats(data_dir / "stats.json", train_npz=data_dir / "processed" / "train.npz")


def load_stats(json_path: str | os.PathLike, train_npz: str | os.PathLike | None = None) -> dict:
    """Read stats written by `compute_stats`; mean/std are 3 finite floats, std > 0. With `train_npz`,
    refuse stats that were computed from another version of that file."""
    path = Path(json_path)
    if not path.is_file():
        raise DataError(f"normalisation stats file {path} does not exist; run `vjepa stats` first")
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(
            f"normalisation stats file {path} is not valid JSON ({e}); delete it and run `vjepa stats` again"
        ) from e
    problem = _stats_problem(stats)
    if problem:
        raise DataError(
            f"normalisation stats file {path} is malformed: {problem}; delete it and run `vjepa stats` again"
        )
    if (
        train_npz is not None
        and Path(train_npz).is_file()
        and stats.get("train_sha256") != file_digest(train_npz, "sha256")
    ):
        raise DataError(
            f"normalisation stats file {path} was computed from another {train_npz} than the one "
            "there now (the data was prepared again); run `vjepa stats` again"
        )
    return stats


def _stats_problem(stats: Any) -> str | None:
    if not isinstance(stats, dict):
        return "expected a JSON object"
    for key in ("mean", "std"):
        v = stats.get(key)
        if not (
            isinstance(v, list)
            and len(v) == 3
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
        ):
            return f"'{key}' must be a list of 3 finite numbers, got {v!r}"
    if any(s <= 0 for s in stats["std"]):
        return f"'std' must be positive in every channel, got {stats['std']} (a constant channel cannot be normalised)"
    return None
