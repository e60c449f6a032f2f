import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def default_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def params(default_params) -> dict:
    """A fresh copy of the default params, safe to modify."""
    return copy.deepcopy(default_params)


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
