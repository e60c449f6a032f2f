"""Checkpoint files: what they hold, atomic saving, and safe loading (`weights_only=True`)."""
from __future__ import annotations

from pathlib import Path

import torch

from .config import (AugmentConfig, Config, DataConfig, EvalConfig, MaskConfig, ModelConfig, TrainConfig)
from .errors import CheckpointError
from .io import atomic_path

FORMAT = "vjepa-checkpoint"
VERSION = 1


def save(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)


def load(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint without unpickling arbitrary objects; clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' not found; run `vjepa train` for this head first")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, ...
        raise CheckpointError(f"checkpoint '{path}' cannot be read ({type(e).__name__}: {str(e).splitlines()[0]}); "
                              "delete it and retrain") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a vjepa checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"checkpoint '{path}' has format version {state.get('version')}, this vjepa "
                              f"reads version {VERSION}; retrain or use the matching vjepa release")
    return state


def config_from_dict(d: dict) -> Config:
    """Rebuild the typed Config stored in a checkpoint."""
    t = lambda x: {k: tuple(v) if isinstance(v, list) else v for k, v in x.items()}
    return Config(seed=d["seed"], head_name=d["head_name"], data=DataConfig(**d["data"]),
                  model=ModelConfig(**d["model"]), mask=MaskConfig(**t(d["mask"])),
                  augment=AugmentConfig(**t(d["augment"])), train=TrainConfig(**d["train"]),
                  eval=EvalConfig(**d["eval"]), head=dict(d["head"]))


def build_model(state: dict, *, random_init: bool = False):
    """(Config, JEPA) from a loaded checkpoint: its trained weights, or with `random_init` the
    seeded initial weights the run started from (training seeds with the same seed before building)."""
    from .jepa import JEPA

    cfg = config_from_dict(state["config"])
    torch.manual_seed(cfg.seed)
    model = JEPA(cfg)
    if not random_init:
        model.load_state_dict(state["model"])
    return cfg, model
