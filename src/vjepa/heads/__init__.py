"""Registry of predictor heads: name → class. Adding a head = one file + one line here
+ one `head.<name>` section in params.yaml (and its schema)."""
from __future__ import annotations

from ..errors import ConfigError
from .base import Head
from .deterministic import DeterministicHead
from .diffusion import DiffusionHead
from .flow import FlowHead
from .flow_matching import FlowMatchingHead
from .mdn import MDNHead
from .rnade import RNADEHead

HEADS: dict[str, type[Head]] = {
    "deterministic": DeterministicHead,
    "mdn": MDNHead,
    "rnade": RNADEHead,
    "flow": FlowHead,
    "flow_matching": FlowMatchingHead,
    "diffusion": DiffusionHead,
}


def build_head(name: str, cond_dim: int, target_dim: int, settings: dict) -> Head:
    """Instantiate head `name`; `settings` is its params section without the overrides."""
    if name not in HEADS:
        raise KeyError(f"unknown head '{name}'; known heads: {', '.join(HEADS)}")
    try:
        return HEADS[name](cond_dim, target_dim, **settings)
    except ValueError as e:  # a head's own consistency check on its settings
        raise ConfigError(f"head.{name}: {e}") from None
