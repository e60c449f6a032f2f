"""Bad checkpoints give one clear error naming the mismatch, through the real command line."""

import os
import shutil

import pytest
import torch

from vjepa.cli import main
from vjepa.model import checkpoint

from conftest import tiny, write_params


class Payload:
    """Unpickling this would create a file: loading must never run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture(scope="module")
def run(tmp_path_factory, default_params):
    import copy

    d = tmp_path_factory.mktemp("ckpt")
    params = tiny(copy.deepcopy(default_params))
    params["heads"] = ["deterministic", "mdn"]
    p = write_params(d / "params.yaml", params)
    common = ["--params", str(p), "--data-dir", str(d / "data"), "--results-dir", str(d / "results"), "--quiet"]
    for cmd in (["prepare"], ["stats"], ["train", "--head", "deterministic"]):
        assert main([*cmd, *common]) == 0
    return d, params, common


def embed_error(run, tmp_path, capsys, head="deterministic", params=None, state=None, raw: bytes | None = None):
    d, default, common = run
    results = tmp_path / "results"
    target = results / "heads" / head / "seed0" / "checkpoint.pt"
    target.parent.mkdir(parents=True)
    good = d / "results" / "heads" / "deterministic" / "seed0" / "checkpoint.pt"
    if raw is not None:
        target.write_bytes(raw)
    elif state is not None:
        torch.save(state, target)
    else:
        shutil.copy(good, target)
    args = common[:]
    args[args.index("--results-dir") + 1] = str(results)
    if params is not None:
        args[args.index("--params") + 1] = str(write_params(tmp_path / "p.yaml", params))
    capsys.readouterr()
    assert main(["embed", "--head", head, *args]) == 2
    assert not (target.parent / "embeddings.npz").exists()
    return capsys.readouterr().err


def good_state(run):
    return checkpoint.load(run[0] / "results" / "heads" / "deterministic" / "seed0" / "checkpoint.pt")


@pytest.mark.slow
def test_truncated(run, tmp_path, capsys):
    whole = (run[0] / "results" / "heads" / "deterministic" / "seed0" / "checkpoint.pt").read_bytes()
    err = embed_error(run, tmp_path, capsys, raw=whole[: len(whole) // 2])
    assert "cannot be read" in err and "delete it and retrain" in err


def test_another_heads_checkpoint(run, tmp_path, capsys):
    err = embed_error(run, tmp_path, capsys, head="mdn")
    assert "head_name is 'deterministic' in the checkpoint, 'mdn' in params" in err


def test_another_model_size(run, tmp_path, capsys):
    import copy

    params = copy.deepcopy(run[1])
    params["model"]["embed_dim"] = 48
    err = embed_error(run, tmp_path, capsys, params=params)
    assert "model.embed_dim is 32 in the checkpoint, 48 in params" in err and "retrain" in err


def test_incompatible_version(run, tmp_path, capsys):
    err = embed_error(run, tmp_path, capsys, state={**good_state(run), "version": 1})
    assert "format version 1, this vjepa reads version 5" in err


def test_weights_that_do_not_fit_the_config(run, tmp_path, capsys):
    state = good_state(run)
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("predictor.")}
    err = embed_error(run, tmp_path, capsys, state=state)
    assert "weights do not fit" in err


def test_arbitrary_pickles_are_never_run(run, tmp_path, capsys):
    marker = tmp_path / "was-unpickled"
    err = embed_error(run, tmp_path, capsys, state={**good_state(run), "extra": Payload(str(marker))})
    assert "cannot be read" in err and not marker.exists()


def test_not_a_checkpoint(run, tmp_path, capsys):
    err = embed_error(run, tmp_path, capsys, state={"weights": torch.zeros(3)})
    assert "is not a vjepa checkpoint" in err
