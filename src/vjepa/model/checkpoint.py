"""Checkpoint files: what they hold, atomic saving, and safe loading (`weights_only=True`)."""

from __future__ import annotations

from pathlib import Path

import torch

from vjepa.core.config import (
    AugmentConfig,
    Config,
    DataConfig,
    EvalConfig,
    MaskConfig,
    ModelConfig,
    TrainConfig,
    TrunkConfig,
)
from vjepa.core.errors import CheckpointError
from vjepa.core.io import atomic_path

FORMAT = "vjepa-checkpoint"
VERSION = 5  # 2: model.predictor_pass, train.compile; 3: eval.draws, scored_tokens, probe_*; 4: trunk, photometric
# augment; 5: trunk.predict_weight, trunk.predict_share


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
        raise CheckpointError(
            f"checkpoint '{path}' cannot be read ({type(e).__name__}: {str(e).splitlines()[0]}); delete it and retrain"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a vjepa checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint '{path}' has format version {state.get('version')}, this vjepa "
            f"reads version {VERSION}; retrain or use the matching vjepa release"
        )
    return state


def config_from_dict(d: dict) -> Config:
    """Rebuild the typed Config stored in a checkpoint."""
    t = lambda x: {k: tuple(v) if isinstance(v, list) else v for k, v in x.items()}
    return Config(
        seed=d["seed"],
        head_name=d["head_name"],
        data=DataConfig(**d["data"]),
        model=ModelConfig(**d["model"]),
        mask=MaskConfig(**t(d["mask"])),
        augment=AugmentConfig(**t(d["augment"])),
        trunk=TrunkConfig(**t(d["trunk"])),
        train=TrainConfig(**d["train"]),
        eval=EvalConfig(**d["eval"]),
        head=dict(d["head"]),
    )


def build_model(state: dict, *, random_init: bool = False):
    """(Config, JEPA) from a loaded checkpoint: its trained weights, or with `random_init` the
    seeded initial weights the run started from (training seeds with the same seed before building)."""
    from vjepa.model.jepa import JEPA

    try:
        cfg = config_from_dict(state["config"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(
            f"the checkpoint's stored config does not fit this vjepa ({type(e).__name__}: {e}); retrain"
        ) from None
    torch.manual_seed(cfg.seed)
    model = JEPA(cfg)
    if not random_init:
        try:
            model.load_state_dict(state["model"])
        except (KeyError, RuntimeError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(
                f"the checkpoint's weights do not fit the model of its own config ({first}); "
                "the file is damaged or was edited: retrain"
            ) from None
    return cfg, model


# What shapes the network: a checkpoint is usable for a run only where these agree with its params.
ARCHITECTURE = ("head_name", "data.image_size", "model", "trunk.projector_dim", "head")


def load_model(path: str | Path, expect: Config | None = None, *, random_init: bool = False):
    """(state, Config, JEPA) from a checkpoint file. With `expect`, refuse a checkpoint whose head or
    architecture differs from it (e.g. another head's file, or params changed since training)."""
    state = load(path)
    if expect is not None:
        mismatch = _differences(state.get("config", {}), expect.to_dict())
        if mismatch:
            raise CheckpointError(
                f"checkpoint '{path}' does not match the params: {'; '.join(mismatch[:4])}; "
                f"retrain with `vjepa train --head {expect.head_name}`"
            )
    return (state, *build_model(state, random_init=random_init))


def _differences(stored: dict, wanted: dict) -> list[str]:
    out = []
    for key in ARCHITECTURE:
        a, b = _get(stored, key), _get(wanted, key)
        if isinstance(b, dict):
            a = a if isinstance(a, dict) else {}
            out += [
                f"{key}.{k} is {a.get(k)!r} in the checkpoint, {v!r} in params"
                for k, v in b.items()
                if _plain(a.get(k)) != _plain(v)
            ]
        elif _plain(a) != _plain(b):
            out.append(f"{key} is {a!r} in the checkpoint, {b!r} in params")
    return out


def _get(d: dict, dotted: str):
    for k in dotted.split("."):
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _plain(v):
    return list(v) if isinstance(v, tuple) else v
