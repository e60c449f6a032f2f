"""Registry of predictor heads: name → class, the one list of heads. Adding a head = its file here,
its line in `HEADS`, its section under `head:` in the schema and in params.yaml (docs/architecture.md).

A head's module is imported when the head is built, not with the package, so that a stage runs
(and the pipeline declares, `vjepa.pipeline.codedeps`) only the head it uses."""

from __future__ import annotations

import importlib

from vjepa.core.errors import ConfigError
from vjepa.model.heads.base import Head

# name -> its class, in heads/NAME.py (the module is the name: vjepa.pipeline.codedeps relies on it)
HEADS: dict[str, str] = {
    "deterministic": "DeterministicHead",
    "mdn": "MDNHead",
    "rnade": "RNADEHead",
    "flow": "FlowHead",
    "flow_matching": "FlowMatchingHead",
    "diffusion": "DiffusionHead",
}


def head_class(name: str) -> type[Head]:
    if name not in HEADS:
        raise KeyError(f"unknown head '{name}'; known heads: {', '.join(HEADS)}")
    return getattr(importlib.import_module(f".{name}", __name__), HEADS[name])


def build_head(name: str, cond_dim: int, target_dim: int, settings: dict) -> Head:
    """Instantiate head `name`; `settings` is its params section without the overrides."""
    try:
        return head_class(name)(cond_dim, target_dim, **settings)
    except ValueError as e:  # a head's own consistency check on its settings
        raise ConfigError(f"head.{name}: {e}") from None
