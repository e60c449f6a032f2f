"""Bad data through the real command line: each case is one clear `vjepa: error:` line (exit 2), or a
documented, logged handling; never a traceback."""

import json

import numpy as np
import pytest
from PIL import Image

from vjepa.cli import main

from conftest import tiny, write_params


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, default_params):
    import copy

    d = tmp_path_factory.mktemp("bad-data")
    params = tiny(copy.deepcopy(default_params))
    f = write_params(d / "params.yaml", params)
    assert main(["prepare", "--params", str(f), "--data-dir", str(d / "data"), "--quiet"]) == 0
    assert main(["stats", "--params", str(f), "--data-dir", str(d / "data"), "--quiet"]) == 0
    return d, params


def data_copy(prepared, tmp_path):
    import shutil

    shutil.copytree(prepared[0] / "data", tmp_path / "data")
    return tmp_path / "data"


def run(params, tmp_path, capsys, *cmd, data=None):
    f = write_params(tmp_path / "p.yaml", params)
    capsys.readouterr()
    code = main(
        [
            *cmd,
            "--params",
            str(f),
            "--data-dir",
            str(data or tmp_path / "data"),
            "--results-dir",
            str(tmp_path / "results"),
            "--quiet",
        ]
    )
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.err


def imagefolder_params(params, path):
    import copy

    p = copy.deepcopy(params)
    p["data"].update(source="imagefolder", path=str(path), num_classes=2)
    return p


def write_images(folder, n, size=16, colour=(200, 10, 10)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (size, size), colour).save(folder / f"{i}.png")


def test_missing_dataset_folder(prepared, tmp_path, capsys):
    code, err = run(imagefolder_params(prepared[1], tmp_path / "nowhere"), tmp_path, capsys, "prepare")
    assert code == 2 and "nowhere does not exist or is not a folder; fix the data.path params key" in err


def test_empty_dataset_folder(prepared, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, err = run(imagefolder_params(prepared[1], tmp_path / "empty"), tmp_path, capsys, "prepare")
    assert code == 2 and "has no class sub-folders" in err


def test_class_with_no_images(prepared, tmp_path, capsys):
    write_images(tmp_path / "imgs" / "cat", 10)
    (tmp_path / "imgs" / "dog").mkdir()
    code, err = run(imagefolder_params(prepared[1], tmp_path / "imgs"), tmp_path, capsys, "prepare")
    assert code == 2 and "holds no images" in err


def test_few_corrupt_images_are_skipped_with_a_count(prepared, tmp_path, capsys):
    for c, colour in (("cat", (200, 10, 10)), ("dog", (10, 10, 200))):
        write_images(tmp_path / "imgs" / c, 30, colour=colour)
    (tmp_path / "imgs" / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match="skipped 1 of 61 unreadable image files"):
        code, _ = run(imagefolder_params(prepared[1], tmp_path / "imgs"), tmp_path, capsys, "prepare")
    assert code == 0


def test_mostly_corrupt_images_are_refused(prepared, tmp_path, capsys):
    for c in ("cat", "dog"):
        write_images(tmp_path / "imgs" / c, 3)
        for i in range(10):
            (tmp_path / "imgs" / c / f"bad{i}.jpg").write_bytes(b"garbage")
    code, err = run(imagefolder_params(prepared[1], tmp_path / "imgs"), tmp_path, capsys, "prepare")
    assert code == 2 and "unreadable" in err


def test_corrupt_prepared_npz(prepared, tmp_path, capsys):
    data = data_copy(prepared, tmp_path)
    whole = (data / "processed" / "train.npz").read_bytes()
    (data / "processed" / "train.npz").write_bytes(whole[: len(whole) // 3])
    code, err = run(prepared[1], tmp_path, capsys, "stats", data=data)
    assert code == 2 and "is unreadable or corrupt" in err and "run `vjepa prepare` again" in err


def test_labels_out_of_range(prepared, tmp_path, capsys):
    data = data_copy(prepared, tmp_path)
    with np.load(data / "processed" / "val.npz") as f:
        images, labels = f["images"], f["labels"].copy()
    labels[0] = 12
    np.savez(data / "processed" / "val.npz", images=images, labels=labels)
    code, err = run(prepared[1], tmp_path, capsys, "reference", data=data)
    assert code == 2 and "labels range over 0..12, outside the class indices 0..9" in err


def test_stats_from_other_data(prepared, tmp_path, capsys):
    data = data_copy(prepared, tmp_path)
    stats = json.loads((data / "stats.json").read_text())
    (data / "stats.json").write_text(json.dumps({**stats, "train_sha256": "0" * 64}))
    code, err = run(prepared[1], tmp_path, capsys, "train", "--head", "deterministic", data=data)
    assert code == 2 and "was computed from another" in err


def test_malformed_stats(prepared, tmp_path, capsys):
    data = data_copy(prepared, tmp_path)
    (data / "stats.json").write_text('{"mean": [0.5, 0.5], "std": [1, 1, 1]}')
    code, err = run(prepared[1], tmp_path, capsys, "train", "--head", "deterministic", data=data)
    assert code == 2 and "'mean' must be a list of 3 finite numbers" in err


def test_missing_prepared_data(prepared, tmp_path, capsys):
    code, err = run(prepared[1], tmp_path, capsys, "stats", data=tmp_path / "none")
    assert code == 2 and "does not exist; run `vjepa prepare` first" in err
