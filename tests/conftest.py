import copy
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Under pytest-xdist (`-n N`) each worker gets its share of the cores: two workers whose PyTorch
    and BLAS pools each take every core spin against each other and run several times slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        from vjepa.core import launch

        launch.limit_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_collection_modifyitems(config, items):
    """The longest tests first. With `-n auto` the workers take one test at a time
    (`--maxschedchunk=1` in pyproject.toml), so the long ones start at once and the short ones fill in
    around them, instead of a long test starting late and running alone at the end. A slow test's
    rough cost is its marker's `seconds` (10 when not given); the sort keeps collection order otherwise."""

    def seconds(item) -> float:
        slow = item.get_closest_marker("slow")
        return 0 if slow is None else slow.kwargs.get("seconds", 10)

    items.sort(key=seconds, reverse=True)


@pytest.fixture(scope="session")
def default_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def params(default_params) -> dict:
    """A fresh copy of the default params, safe to modify."""
    return copy.deepcopy(default_params)


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """Digits prepared at 16 px with their stats, shared by a module's tests."""
    from vjepa.data.sources import compute_stats, prepare

    d = tmp_path_factory.mktemp("data")
    prepare("digits", d / "processed", image_size=16, num_classes=10, path=None, val_fraction=0.2, split_seed=0)
    compute_stats(d / "processed" / "train.npz", d / "stats.json")
    return d


def tiny(params: dict) -> dict:
    """Shrink the default params to a model and budget that train in seconds."""
    params["model"].update(embed_dim=32, depth=2, num_heads=2, pred_dim=16, pred_depth=1, pred_num_heads=2)
    params["data"]["image_size"] = 16
    params["model"]["patch_size"] = 2
    params["train"].update(steps=6, batch_size=16, warmup_steps=2, log_every=2, eval_every=3, ckpt_every=3)
    return params


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params))
    return path
