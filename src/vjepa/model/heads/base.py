"""The head interface: every predictor head is a distribution over target tokens.

A head sees `cond` (B×T×C, the predictor trunk's output at each target position)
and, in training, `target` (B×T×D, the teacher's layer-normed tokens).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class Head(nn.Module):
    #: True when `log_prob` is an exact density; evaluation reports "n/a" otherwise.
    exact_log_prob: bool = False

    def __init__(self, cond_dim: int, target_dim: int):
        super().__init__()
        self.cond_dim = cond_dim
        self.target_dim = target_dim

    def loss(self, cond: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar training loss and a dict of detached diagnostic scalars (tensors, no host sync)."""
        raise NotImplementedError

    def sample(self, cond: torch.Tensor, n: int) -> torch.Tensor:
        """n draws per token: n×B×T×D."""
        raise NotImplementedError

    def point(self, cond: torch.Tensor) -> torch.Tensor:
        """One prediction per token (mean or mode): B×T×D."""
        raise NotImplementedError

    def log_prob(self, cond: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """log p(target | cond) per token: B×T. Only heads with `exact_log_prob`."""
        raise NotImplementedError(f"{type(self).__name__} has no exact log-density")
