"""Registry of predictor heads: name → (module, class). Adding a head = one file + one line here
+ one `head.<name>` section in params.yaml (and its schema).

A head's module is imported when the head is built, not with the package, so that a stage runs
(and the pipeline declares, `vjepa.codedeps`) only the head it uses."""
from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import Head

HEADS: dict[str, tuple[str, str]] = {
    "deterministic": ("deterministic", "DeterministicHead"),
    "mdn": ("mdn", "MDNHead"),
    "rnade": ("rnade", "RNADEHead"),
    "flow": ("flow", "FlowHead"),
    "flow_matching": ("flow_matching", "FlowMatchingHead"),
    "diffusion": ("diffusion", "DiffusionHead"),
}


def head_class(name: str) -> type[Head]:
    if name not in HEADS:
        raise KeyError(f"unknown head '{name}'; known heads: {', '.join(HEADS)}")
    module, cls = HEADS[name]
    return getattr(importlib.import_module(f".{module}", __name__), cls)


def build_head(name: str, cond_dim: int, target_dim: int, settings: dict) -> Head:
    """Instantiate head `name`; `settings` is its params section without the overrides."""
    try:
        return head_class(name)(cond_dim, target_dim, **settings)
    except ValueError as e:  # a head's own consistency check on its settings
        raise ConfigError(f"head.{name}: {e}") from None
