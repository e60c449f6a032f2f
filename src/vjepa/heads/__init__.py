"""Registry of predictor heads: name → class. Adding a head = one file + one line here
+ one `head.<name>` section in params.yaml (and its schema)."""
from __future__ import annotations

from .base import Head
from .deterministic import DeterministicHead

HEADS: dict[str, type[Head]] = {
    "deterministic": DeterministicHead,
}


def build_head(name: str, cond_dim: int, target_dim: int, settings: dict) -> Head:
    """Instantiate head `name`; `settings` is its params section without the overrides."""
    if name not in HEADS:
        raise KeyError(f"unknown head '{name}'; known heads: {', '.join(HEADS)}")
    return HEADS[name](cond_dim, target_dim, **settings)
