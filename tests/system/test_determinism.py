"""Same params and seed → the same weights and metrics on CPU; every metrics file records seed and versions."""

import json

import pytest
import torch

from vjepa.cli import main
from vjepa.model import checkpoint

from conftest import tiny, write_params

TIMINGS = {"sample_ms_per_token"}  # wall-clock measurements, the only values allowed to differ


def without_timings(m):
    if isinstance(m, dict):
        return {k: without_timings(v) for k, v in m.items() if k not in TIMINGS}
    return m


@pytest.mark.slow
def test_two_runs_give_identical_results(tmp_path, params):
    p = tiny(params)
    p["heads"] = ["mdn"]  # draws noise in its held-out metrics too
    f = write_params(tmp_path / "params.yaml", p)
    runs = []
    for name in ("a", "b"):
        common = [
            "--params",
            str(f),
            "--data-dir",
            str(tmp_path / name / "data"),
            "--results-dir",
            str(tmp_path / name / "results"),
            "--quiet",
        ]
        for cmd in (
            ["prepare"],
            ["stats"],
            ["train", "--head", "mdn"],
            ["embed", "--head", "mdn"],
            ["evaluate", "--head", "mdn"],
            ["reference"],
            ["summarize", "--tex-dir", str(tmp_path / name / "tex")],
        ):
            assert main([*cmd, *common]) == 0
        runs.append(tmp_path / name / "results")
    a, b = (checkpoint.load(r / "heads" / "mdn" / "seed0" / "checkpoint.pt")["model"] for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for rel in ("heads/mdn/seed0/metrics.json", "reference/metrics.json", "metrics.json"):
        ma, mb = (json.loads((r / rel).read_text()) for r in runs)
        assert without_timings(ma) == without_timings(mb), rel
        assert ma["seed"] == 0 and ma["versions"]["torch"] == torch.__version__, rel
    assert (runs[0] / "heads/mdn/seed0/train_curve.csv").read_text() == (
        runs[1] / "heads/mdn/seed0/train_curve.csv"
    ).read_text()
