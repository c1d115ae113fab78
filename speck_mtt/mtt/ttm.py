"""Temporal Transformation Module between MTT stages (docs/design.md#ttm-grouping)."""

from __future__ import annotations

import torch
from torch import nn

from ..timegroups import resample_time


class TTM(nn.Module):
    """Resamples a (B, T, ...) spike tensor to the next stage's T; no parameters, negligible cost."""

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        return resample_time(x, t_out, dim=1)
