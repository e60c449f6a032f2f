"""The paper's baseline: a point prediction per target token.

Loss = alignment (MSE to the teacher token) + variance hinge + covariance penalty on
the predictions (VICReg-style), weighted 1.0 / 0.1 / 0.01 by default.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vjepa.core.distributed import gather_rows
from vjepa.model.heads.base import Head
from vjepa.model.regularizers import covariance_penalty, variance_hinge


class DeterministicHead(Head):
    def __init__(
        self,
        cond_dim: int,
        target_dim: int,
        *,
        align_weight: float = 1.0,
        var_weight: float = 0.1,
        cov_weight: float = 0.01,
    ):
        super().__init__(cond_dim, target_dim)
        self.proj = nn.Linear(cond_dim, target_dim)
        self.weights = (align_weight, var_weight, cov_weight)

    def point(self, cond: torch.Tensor) -> torch.Tensor:
        return self.proj(cond)

    def sample(self, cond: torch.Tensor, n: int) -> torch.Tensor:
        return self.point(cond).unsqueeze(0).expand(n, *cond.shape[:-1], self.target_dim)

    def loss(self, cond, target):
        pred = self.point(cond)
        flat = gather_rows(pred.reshape(-1, self.target_dim).float())  # batch statistics span every rank
        align = F.mse_loss(pred.float(), target.float())
        var = variance_hinge(flat)
        cov = covariance_penalty(flat)
        wa, wv, wc = self.weights
        total = wa * align + wv * var + wc * cov
        return total, {"align": align.detach(), "var": var.detach(), "cov": cov.detach()}
