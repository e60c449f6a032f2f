"""Training: interrupted runs resume to the same weights; a short run learns better-than-random features."""
import pytest
import torch

from vjepa import checkpoint
from vjepa.config import resolve
from vjepa.data import compute_stats, prepare
from vjepa.errors import CheckpointError
from vjepa.train import BatchStream, train

from conftest import tiny


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    prepare("digits", d / "processed", image_size=16, num_classes=10, path=None, val_fraction=0.2, split_seed=0)
    compute_stats(d / "processed" / "train.npz", d / "stats.json")
    return d


def test_batch_stream_is_a_function_of_the_step():
    a, b = BatchStream(100, 16, seed=3), BatchStream(100, 16, seed=3)
    first_epoch = torch.cat([a.indices(s) for s in range(6)])
    assert len(set(first_epoch.tolist())) == 96  # no repeats within an epoch
    assert torch.equal(b.indices(7), a.indices(7))  # random access gives the same batch
    assert not torch.equal(a.indices(0), a.indices(6))  # a new permutation each epoch


def test_interrupted_training_resumes_to_identical_weights(tmp_path, params, digits_dir, monkeypatch):
    cfg = resolve(tiny(params), "deterministic")
    train(cfg, digits_dir, tmp_path / "straight", progress=False)
    reference = checkpoint.load(tmp_path / "straight" / "checkpoint.pt")

    # Ctrl-C during step 5: the loop saves step 4 to resume.pt and re-raises.
    import vjepa.train as train_module

    calls = {"n": 0}
    real = train_module.MultiBlockMaskSampler.__call__

    def interrupt_on_fifth(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(train_module.MultiBlockMaskSampler, "__call__", interrupt_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, digits_dir, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(train_module.MultiBlockMaskSampler, "__call__", real)
    saved = checkpoint.load(tmp_path / "resumed" / "resume.pt")
    assert saved["step"] == 4 and not (tmp_path / "resumed" / "checkpoint.pt").exists()

    result = train(cfg, digits_dir, tmp_path / "resumed", progress=False)
    assert result["resumed"] and result["step"] == 6
    final = checkpoint.load(tmp_path / "resumed" / "checkpoint.pt")
    assert not (tmp_path / "resumed" / "resume.pt").exists()
    for k, v in reference["model"].items():
        assert torch.equal(v, final["model"][k]), k  # bitwise on CPU
    assert final["history"] == reference["history"]


def test_changed_params_start_afresh(tmp_path, params, digits_dir):
    cfg = resolve(tiny(params), "deterministic")
    train(cfg, digits_dir, tmp_path, progress=False)
    params["train"]["lr"] = 5e-4
    result = train(resolve(params, "deterministic"), digits_dir, tmp_path, progress=False)
    assert not result["resumed"] and result["step"] == 6


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="cannot be read"):
        checkpoint.load(bad)
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(CheckpointError, match="not a vjepa checkpoint"):
        checkpoint.load(bad)
    torch.save({"format": checkpoint.FORMAT, "version": 99}, bad)
    with pytest.raises(CheckpointError, match="format version 99"):
        checkpoint.load(bad)
