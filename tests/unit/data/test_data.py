"""Data preparation, prepared-file loading and normalisation stats, all on local fixtures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vjepa.core.errors import DataError
from vjepa.data import sources as data

from images import fixture_image as _fixture_image
from images import hf_table as _hf_table
from images import png_bytes as _png_bytes

SPLIT = dict(val_fraction=0.2, split_seed=0)


# --------------------------------------------------------------------------- helpers


def _write_image_folder(root: Path, counts: dict[str, int], size=(20, 12)) -> None:
    for k, (name, n) in enumerate(sorted(counts.items())):
        d = root / name
        d.mkdir(parents=True)
        for j in range(n):
            arr = np.full((size[1], size[0], 3), (k * 40, j, 100), dtype=np.uint8)
            ext = ".PNG" if j % 2 else ".png"
            Image.fromarray(arr).save(d / f"img{j}{ext}", format="PNG")


def _prepare(source: str, out: Path, **kw):
    args = dict(image_size=16, num_classes=None, path=None, **SPLIT)
    args.update(kw)
    return data.prepare(source, out, **args)


def _load_all(out: Path):
    with np.load(out / "train.npz") as tr, np.load(out / "val.npz") as va:
        return {k: tr[k] for k in tr.files}, {k: va[k] for k in va.files}


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory):
    outs = [tmp_path_factory.mktemp(f"digits{i}") for i in range(2)]
    summaries = [_prepare("digits", o, image_size=32) for o in outs]
    return outs, summaries


def test_digits_arrays(digits_runs):
    (out, _), (summary, _) = digits_runs
    tr, va = _load_all(out)
    for split in (tr, va):
        x, y = split["images"], split["labels"]
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3)
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 0], x[..., 2])
        assert x.min() == 0 and x.max() >= 250
        assert list(split["classes"]) == [str(c) for c in range(10)]
    assert len(tr["labels"]) + len(va["labels"]) == 1797
    assert summary == {
        "source": "digits",
        "image_size": 32,
        "num_classes": 10,
        "n_train": len(tr["labels"]),
        "n_val": len(va["labels"]),
    }
    # Stratified: every class in both splits, with val share close to val_fraction in each class.
    for c in range(10):
        n_tr, n_va = (tr["labels"] == c).sum(), (va["labels"] == c).sum()
        assert n_tr > 0 and n_va > 0
        assert abs(n_va / (n_tr + n_va) - 0.2) < 0.02


def test_digits_split_is_deterministic(digits_runs):
    (a, b), _ = digits_runs
    for name in ("train.npz", "val.npz"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_digits_num_classes(tmp_path):
    summary = _prepare("digits", tmp_path, image_size=8, num_classes=3)
    tr, va = _load_all(tmp_path)
    assert summary["num_classes"] == 3 and list(tr["classes"]) == ["0", "1", "2"]
    assert set(tr["labels"]) == set(va["labels"]) == {0, 1, 2}
    with pytest.raises(DataError, match="num_classes"):
        _prepare("digits", tmp_path, num_classes=11)


def test_digits_scaling_matches_source(tmp_path):
    from sklearn.datasets import load_digits

    _prepare("digits", tmp_path, image_size=8)
    x, _ = data.load_split(tmp_path / "train.npz")
    expected = {tuple(np.rint(img * 255 / 16).astype(np.uint8).ravel()) for img in load_digits().images}
    assert all(tuple(img[..., 0].ravel()) in expected for img in x[:50])


# --------------------------------------------------------------------------- argument validation


def test_unknown_source(tmp_path):
    with pytest.raises(DataError, match="digits, tiny-imagenet, imagefolder"):
        _prepare("mnist", tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "bad",
    [dict(val_fraction=0.0), dict(val_fraction=1.5), dict(image_size=0), dict(num_classes=0), dict(split_seed=-1)],
)
def test_bad_arguments(tmp_path, bad):
    with pytest.raises(DataError):
        _prepare("digits", tmp_path, **bad)


def test_missing_path_names_params_key(tmp_path):
    missing = tmp_path / "nowhere"
    for source in ("tiny-imagenet", "imagefolder"):
        with pytest.raises(DataError, match="data.path") as e:
            _prepare(source, tmp_path / "out", path=str(missing))
        assert str(missing) in str(e.value)
    with pytest.raises(DataError, match="data.path"):
        _prepare("imagefolder", tmp_path / "out", path=None)


# --------------------------------------------------------------------------- tiny-imagenet


def _check_tiny(out: Path, n_train_rows: int, n_val_rows: int, size: int):
    tr, va = _load_all(out)
    for split, n_rows in ((tr, n_train_rows), (va, n_val_rows)):
        x, y = split["images"], split["labels"]
        assert x.dtype == np.uint8 and x.shape == (len(y), size, size, 3) and y.dtype == np.int64
        assert set(y.tolist()) <= {0, 1, 2, 3}
        assert len(y) == sum(1 for i in range(n_rows) if i % 6 < 4)
        assert list(split["classes"]) == ["0", "1", "2", "3"]
    return tr, va


def test_tiny_imagenet_local_parquet(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    pq.write_table(_hf_table(30), src / "train.parquet")
    pq.write_table(_hf_table(12), src / "valid.parquet")
    summary = _prepare("tiny-imagenet", tmp_path / "out", image_size=32, num_classes=4, path=str(src))
    tr, va = _check_tiny(tmp_path / "out", 30, 12, 32)
    assert summary["n_train"] == len(tr["labels"]) == 20

    # Rows with label < 4 are kept in order; image 0 was grayscale, so its channels are identical.
    kept = [i for i in range(30) if i % 6 < 4]
    assert tr["labels"].tolist() == [i % 6 for i in kept]
    gray = tr["images"][0]
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
    rgb = tr["images"][1].astype(int)  # image 1: PNG-or-JPEG RGB with red 200, blue 50
    assert abs(rgb[..., 0].mean() - 200) < 3 and abs(rgb[..., 2].mean() - 50) < 3


def test_tiny_imagenet_native_size_is_lossless(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    pq.write_table(_hf_table(12), src / "train.parquet")
    pq.write_table(_hf_table(6), src / "valid.parquet")
    _prepare("tiny-imagenet", tmp_path / "out", image_size=64, num_classes=4, path=str(src))
    x, _ = data.load_split(tmp_path / "out" / "train.npz")
    assert np.array_equal(x[0], np.asarray(_fixture_image(0).convert("RGB")))  # PNG, no resize


def test_tiny_imagenet_sharded_parquet(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    pq.write_table(_hf_table(15), src / "train-00000-of-00002.parquet")
    pq.write_table(_hf_table(15, offset=15), src / "train-00001-of-00002.parquet")
    pq.write_table(_hf_table(12), src / "valid-00000-of-00001.parquet")
    _prepare("tiny-imagenet", tmp_path / "a", image_size=32, num_classes=4, path=str(src))
    tr, _ = _check_tiny(tmp_path / "a", 30, 12, 32)
    assert tr["labels"].tolist() == [i % 6 for i in range(30) if i % 6 < 4]  # shards in sorted order

    single = tmp_path / "single"
    single.mkdir()
    pq.write_table(_hf_table(30), single / "train.parquet")
    pq.write_table(_hf_table(12), single / "valid.parquet")
    _prepare("tiny-imagenet", tmp_path / "b", image_size=32, num_classes=4, path=str(single))
    assert (tmp_path / "a" / "train.npz").read_bytes() == (tmp_path / "b" / "train.npz").read_bytes()


def test_tiny_imagenet_missing_files(tmp_path):
    (tmp_path / "src").mkdir()
    pq.write_table(_hf_table(6), tmp_path / "src" / "train.parquet")
    with pytest.raises(DataError, match="valid"):
        _prepare("tiny-imagenet", tmp_path / "out", num_classes=4, path=str(tmp_path / "src"))


def _hub_images_and_labels(n: int):
    return [_fixture_image(i) for i in range(n)], [i % 6 for i in range(n)]


def test_tiny_imagenet_hub_datasets_objects(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})

    def fake_load_dataset(name, *args, **kwargs):
        assert name == "zh-plus/tiny-imagenet"
        splits = {}
        for split, n in (("train", 30), ("valid", 12)):
            imgs, labels = _hub_images_and_labels(n)
            splits[split] = datasets.Dataset.from_dict({"image": imgs, "label": labels}, features=features)
        return splits

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    _prepare("tiny-imagenet", tmp_path / "out", image_size=32, num_classes=4, path=None)
    _check_tiny(tmp_path / "out", 30, 12, 32)


def test_tiny_imagenet_hub_rows(tmp_path, monkeypatch):
    """Rows as plain dicts: decoded PIL images in train, {bytes, path} structs in valid."""
    datasets = pytest.importorskip("datasets")
    imgs, labels = _hub_images_and_labels(30)
    train = [{"image": im, "label": lab} for im, lab in zip(imgs, labels)]
    imgs, labels = _hub_images_and_labels(12)
    valid = [{"image": {"bytes": _png_bytes(im), "path": None}, "label": lab} for im, lab in zip(imgs, labels)]
    monkeypatch.setattr(datasets, "load_dataset", lambda name, *a, **k: {"train": train, "valid": valid})
    _prepare("tiny-imagenet", tmp_path / "rows", image_size=32, num_classes=4, path=None)
    tr, _ = _check_tiny(tmp_path / "rows", 30, 12, 32)
    gray = tr["images"][0]
    assert np.array_equal(gray[..., 0], gray[..., 2])


def test_tiny_imagenet_hub_unreachable(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="hub") as e:
        _prepare("tiny-imagenet", tmp_path / "out", num_classes=4, path=None)
    assert "data.path" in str(e.value)


# --------------------------------------------------------------------------- imagefolder


def test_imagefolder_flat(tmp_path):
    root = tmp_path / "imgs"
    _write_image_folder(root, {"zebra": 6, "ant": 5, "cat": 5})
    summary = _prepare("imagefolder", tmp_path / "out", path=str(root), image_size=10, val_fraction=0.4)
    tr, va = _load_all(tmp_path / "out")
    assert list(tr["classes"]) == ["ant", "cat", "zebra"]
    assert summary["n_train"] + summary["n_val"] == 16
    assert set(tr["labels"].tolist()) == set(va["labels"].tolist()) == {0, 1, 2}
    # Red channel encodes the sorted class index (k * 40), so labels follow sorted names.
    for split in (tr, va):
        assert split["images"].shape[1:] == (10, 10, 3)
        assert np.array_equal(split["images"][:, 5, 5, 0], split["labels"] * 40)


def test_imagefolder_resize_and_center_crop(tmp_path):
    root = tmp_path / "imgs"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for j in range(3):
            arr = np.zeros((8, 24, 3), dtype=np.uint8)  # 24 wide x 8 high: middle third is white
            arr[:, 8:16] = 255
            Image.fromarray(arr).save(root / name / f"{j}.bmp")
    _prepare("imagefolder", tmp_path / "out", path=str(root), image_size=8, val_fraction=0.34)
    x, _ = data.load_split(tmp_path / "out" / "train.npz")
    assert x.shape[1:] == (8, 8, 3) and np.all(x == 255)


def test_imagefolder_num_classes(tmp_path):
    root = tmp_path / "imgs"
    _write_image_folder(root, {"a": 3, "b": 3, "c": 3})
    summary = _prepare("imagefolder", tmp_path / "out", path=str(root), num_classes=2, val_fraction=0.34)
    tr, _ = _load_all(tmp_path / "out")
    assert summary["num_classes"] == 2 and list(tr["classes"]) == ["a", "b"]
    assert summary["n_train"] + summary["n_val"] == 6


def test_imagefolder_skips_corrupt_file(tmp_path):
    root = tmp_path / "imgs"
    _write_image_folder(root, {"a": 10, "b": 10})
    (root / "a" / "broken.jpg").write_bytes(b"not an image at all")
    (root / "b" / "notes.txt").write_text("ignored: not an image extension")
    with pytest.warns(UserWarning, match="skipped 1 of 21"):
        summary = _prepare("imagefolder", tmp_path / "out", path=str(root))
    assert summary["n_train"] + summary["n_val"] == 20


def test_imagefolder_too_many_corrupt(tmp_path):
    root = tmp_path / "imgs"
    _write_image_folder(root, {"a": 4, "b": 4})
    good = (root / "a" / "img0.png").read_bytes()
    (root / "a" / "trunc.png").write_bytes(good[: len(good) // 2])
    (root / "b" / "junk.webp").write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match="unreadable"):
        _prepare("imagefolder", tmp_path / "out", path=str(root))


def test_imagefolder_missing_and_empty(tmp_path):
    (tmp_path / "bare").mkdir()
    with pytest.raises(DataError, match="class sub-folders") as e:
        _prepare("imagefolder", tmp_path / "out", path=str(tmp_path / "bare"))
    assert str(tmp_path / "bare") in str(e.value)

    root = tmp_path / "imgs"
    _write_image_folder(root, {"a": 3})
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images") as e:
        _prepare("imagefolder", tmp_path / "out", path=str(root))
    assert str(root / "empty") in str(e.value)


def test_imagefolder_train_val_layout(tmp_path):
    root = tmp_path / "imgs"
    _write_image_folder(root / "train", {"x": 4, "y": 3})
    _write_image_folder(root / "val", {"x": 2, "y": 1})
    summary = _prepare("imagefolder", tmp_path / "out", path=str(root), val_fraction=0.5)
    tr, va = _load_all(tmp_path / "out")
    assert (summary["n_train"], summary["n_val"]) == (7, 3)
    assert tr["labels"].tolist() == [0, 0, 0, 0, 1, 1, 1] and va["labels"].tolist() == [0, 0, 1]
    assert list(va["classes"]) == ["x", "y"]

    bad = tmp_path / "bad"
    _write_image_folder(bad / "train", {"x": 2})
    _write_image_folder(bad / "val", {"x": 1, "stray": 1})
    with pytest.raises(DataError, match="stray"):
        _prepare("imagefolder", tmp_path / "out2", path=str(bad))


# --------------------------------------------------------------------------- load_split


def test_load_split_missing(tmp_path):
    with pytest.raises(DataError, match="vjepa prepare"):
        data.load_split(tmp_path / "train.npz")


def test_load_split_garbage_and_truncated(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(DataError, match="garbage.npz"):
        data.load_split(garbage)

    good = tmp_path / "good.npz"
    np.savez(good, images=np.zeros((4, 8, 8, 3), np.uint8), labels=np.zeros(4, np.int64))
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(good.read_bytes()[:300])
    with pytest.raises(DataError, match="trunc.npz"):
        data.load_split(trunc)
    images, labels = data.load_split(good)
    assert images.shape == (4, 8, 8, 3) and labels.shape == (4,)


@pytest.mark.parametrize(
    "arrays",
    [
        dict(images=np.zeros((4, 8, 8, 3), np.uint8)),  # no labels
        dict(images=np.zeros((4, 8, 8, 3), np.float32), labels=np.zeros(4, np.int64)),  # wrong dtype
        dict(images=np.zeros((4, 8, 8), np.uint8), labels=np.zeros(4, np.int64)),  # no channels
        dict(images=np.zeros((4, 8, 8, 3), np.uint8), labels=np.zeros(3, np.int64)),  # length mismatch
    ],
)
def test_load_split_malformed(tmp_path, arrays):
    path = tmp_path / "train.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="train.npz"):
        data.load_split(path)


# --------------------------------------------------------------------------- stats


def _known_train(path: Path, n: int = 10) -> None:
    images = np.zeros((n, 4, 4, 3), dtype=np.uint8)
    images[..., 0] = 255
    images[:, :2, :, 2] = 255  # channel 2: half the pixels of every image are 255
    np.savez(path, images=images, labels=np.arange(n, dtype=np.int64), classes=np.array(["a"]))


def test_compute_stats_known_answer(tmp_path):
    train = tmp_path / "train.npz"
    _known_train(train)
    stats = data.compute_stats(train, tmp_path / "stats.json", subsample=4, seed=3)
    assert stats["mean"] == pytest.approx([1.0, 0.0, 0.5], abs=1e-12)
    assert stats["std"] == pytest.approx([0.0, 0.0, 0.5], abs=1e-6)
    assert (stats["subsample"], stats["seed"], stats["n_images"], stats["image_size"]) == (4, 3, 10, 4)
    assert stats["train_sha256"] == hashlib.sha256(train.read_bytes()).hexdigest()
    assert json.loads((tmp_path / "stats.json").read_text()) == stats

    full = data.compute_stats(train, tmp_path / "full.json", subsample=2000)
    assert full["subsample"] == 10


def test_compute_stats_seeded_subsample(tmp_path):
    rng = np.random.default_rng(0)
    train = tmp_path / "train.npz"
    np.savez(train, images=rng.integers(0, 256, (50, 6, 6, 3), dtype=np.uint8), labels=np.zeros(50, np.int64))
    a = data.compute_stats(train, tmp_path / "a.json", subsample=7, seed=1)
    b = data.compute_stats(train, tmp_path / "b.json", subsample=7, seed=1)
    c = data.compute_stats(train, tmp_path / "c.json", subsample=7, seed=2)
    assert a == b and a["mean"] != c["mean"]
    assert data.load_stats(tmp_path / "a.json") == a


def test_load_stats_errors(tmp_path):
    with pytest.raises(DataError, match="vjepa stats"):
        data.load_stats(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        data.load_stats(bad)
    bad.write_text(json.dumps({"mean": [0.5, 0.5], "std": [0.2, 0.2, 0.2]}))
    with pytest.raises(DataError, match="mean"):
        data.load_stats(bad)
    bad.write_text(json.dumps({"mean": [0.5] * 3, "std": [0.2, 0.0, 0.2]}))
    with pytest.raises(DataError, match="std"):
        data.load_stats(bad)


def test_stats_of_other_data_are_refused(tmp_path):
    data.prepare("digits", tmp_path / "processed", image_size=8, num_classes=10, path=None, **SPLIT)
    data.compute_stats(tmp_path / "processed" / "train.npz", tmp_path / "stats.json")
    assert data.load_data_stats(tmp_path)["n_images"] == 1437
    data.prepare("digits", tmp_path / "processed", image_size=8, num_classes=5, path=None, **SPLIT)
    with pytest.raises(DataError, match="computed from another .*train.npz.* run `vjepa stats` again"):
        data.load_data_stats(tmp_path)
