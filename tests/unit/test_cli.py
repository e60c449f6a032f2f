"""The command line: bad input gives one clear line before any work; the stages chain end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest

from vjepa.cli import main

from conftest import tiny, write_params


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "vjepa", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "data.source=mnist",
            "data.source = 'mnist' is not allowed; choose one of: digits, tiny-imagenet, imagefolder",
        ),
        ("train.lr=abc", "train.lr = 'abc' has the wrong type; expected number"),
        ("train.lr=-1", "train.lr = -1 is out of range; allowed range (0, 1]"),
        ("model.patch_size=5", "data.image_size = 32 is not divisible by model.patch_size = 5"),
        ("train.batch_sise=3", "unknown key 'batch_sise' in 'train'"),
    ],
)
def test_bad_params_give_one_line_before_any_work(tmp_path, params, override, expected):
    write_params(tmp_path / "params.yaml", params)
    r = run_cli("prepare", "--set", override, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vjepa: error: ") and expected in lines[0]
    assert not (tmp_path / "data").exists()  # nothing written


def test_missing_imagefolder_path_is_named(tmp_path, params):
    params["data"].update(source="imagefolder", path=str(tmp_path / "no-such-folder"))
    write_params(tmp_path / "params.yaml", params)
    r = run_cli("prepare", cwd=tmp_path)
    assert r.returncode == 2
    assert "no-such-folder" in r.stderr and "data.path" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data" / "processed" / "train.npz").exists()


def test_missing_params_file_and_missing_inputs(tmp_path, capsys):
    assert main(["check-params", "--params", str(tmp_path / "none.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_batch_larger_than_dataset_is_refused_before_training(tmp_path, params):
    params = tiny(params)
    params["train"]["batch_size"] = 5000
    write_params(tmp_path / "params.yaml", params)
    # The digits split's size is known from the params, so even `prepare` refuses.
    r = run_cli("prepare", cwd=tmp_path)
    assert r.returncode == 2 and "train.batch_size = 5000 is larger than the 1437 digits training images" in r.stderr
    assert not (tmp_path / "data").exists()
    # Other sources are checked when training starts, against the prepared data.
    params["train"]["batch_size"] = 16
    write_params(tmp_path / "params.yaml", params)
    assert run_cli("prepare", cwd=tmp_path).returncode == 0 and run_cli("stats", cwd=tmp_path).returncode == 0
    from vjepa.core.config import resolve
    from vjepa.core.errors import ConfigError
    from vjepa.training.train import train

    params["train"]["batch_size"] = 5000
    cfg = resolve({**params, "data": {**params["data"], "source": "imagefolder", "path": "x"}}, "deterministic")
    with pytest.raises(ConfigError, match="train.batch_size = 5000 is larger than the 1437 training images"):
        train(cfg, tmp_path / "data", tmp_path / "results" / "heads" / "deterministic" / "seed0", progress=False)
    assert not (tmp_path / "results" / "heads" / "deterministic" / "seed0" / "checkpoint.pt").exists()


def test_end_to_end_prepare_stats_train_embed_evaluate_summarize(tmp_path, params):
    """The whole chain on digits with a tiny model, in-process (fast) through the CLI entry point."""
    params = tiny(params)
    params["heads"] = ["deterministic"]
    p = write_params(tmp_path / "params.yaml", params)
    common = [
        "--params",
        str(p),
        "--data-dir",
        str(tmp_path / "data"),
        "--results-dir",
        str(tmp_path / "results"),
        "--quiet",
    ]
    assert main(["prepare", *common]) == 0
    assert main(["stats", *common]) == 0
    assert main(["train", "--head", "deterministic", *common]) == 0
    out = tmp_path / "results" / "heads" / "deterministic" / "seed0"
    assert (out / "checkpoint.pt").is_file() and not (out / "resume.pt").exists()
    curve = (out / "train_curve.csv").read_text().splitlines()
    assert curve[0].startswith("step,lr,loss,") and [r.split(",")[0] for r in curve[1:]] == ["2", "4", "6"]
    assert (out / "knn_curve.csv").read_text().splitlines()[
        0
    ] == "step,knn_top1,feature_std,sample_cosine,sample_mse,val_loss"
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert main(["embed", "--head", "deterministic", *common]) == 0
    assert main(["evaluate", "--head", "deterministic", *common]) == 0
    emb = np.load(out / "embeddings.npz")
    assert emb["train_features"].shape == (1437, 32) and emb["val_features"].shape == (360, 32)
    assert emb["train_features"].dtype == np.float32 and int(emb["step"]) == 6
    m = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= m["knn_top5"] <= 1.0 and m["knn_top1"] <= m["knn_top5"]
    assert m["knn"]["k"] == 20 and m["knn"]["temperature"] == 0.07
    assert m["n_train"] == 1437 and m["n_val"] == 360 and m["step"] == 6 and m["seed"] == 0
    assert m["versions"]["torch"].startswith("2.13")
    assert m["training_warnings"] == [] and m["skipped_steps"] == []
    assert 0.1 < m["probe_top1"] <= m["probe_top5"] <= 1.0 and 1 <= m["probe"]["lbfgs_iterations"] <= 100
    hm = m["head_metrics"]
    assert -1.0 <= hm["point_cosine"] <= 1.0 and hm["sample_ms_per_token"] > 0
    assert hm["nll_per_dim"] is None and "no exact density" in hm["nll_note"]
    assert hm["held_out_tokens"] > 0
    assert main(["reference", *common]) == 0
    ref = json.loads((tmp_path / "results" / "reference" / "metrics.json").read_text())
    assert ref["raw_pixels"]["top1"] > 0.9  # digits are easy in pixel space
    assert ref["raw_pixels"]["probe_top1"] > 0.9 and 0.1 < ref["random_init"]["probe_top1"] <= 1.0
    assert 0.1 < ref["random_init"]["top1"] <= ref["random_init"]["top5"] <= 1.0
    table, numbers, uncertainty = (tmp_path / n for n in ("table1.tex", "numbers.tex", "uncertainty.tex"))
    assert main(["summarize", *common, "--tex-dir", str(tmp_path)]) == 0
    assert "one training seed" in (tmp_path / "comparison.tex").read_text()
    assert "Deterministic (I-JEPA) &" in uncertainty.read_text()
    summary = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert summary["heads"]["deterministic"]["knn_top1"] == m["knn_top1"]
    assert summary["reference"]["raw_pixels"] == ref["raw_pixels"]
    tex = table.read_text()
    assert f"Deterministic (I-JEPA) & 16 & 6 & {100 * m['knn_top1']:.2f} &" in tex and r"\bottomrule" in tex
    assert f"\\newcommand{{\\DeterministicTopOne}}{{{100 * m['knn_top1']:.2f}}}" in numbers.read_text()
    # Rerunning train on a finished run does nothing and keeps the checkpoint.
    before = (out / "checkpoint.pt").stat().st_mtime_ns
    assert main(["train", "--head", "deterministic", *common]) == 0
    assert (out / "checkpoint.pt").stat().st_mtime_ns == before
