"""Training losses on network outputs O of shape (B, T, n_classes) (docs/design.md#ttm-grouping).

- "ce": cross-entropy of the time-mean output (the MTT paper's loss, SDT-style).
- "tet": (1 - lambda) * mean_t CE(O_t, y) + lambda * mean_t MSE(O_t, theta) (Deng et al. 2022);
  evaluation still classifies by the time-mean output.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from ..choices import Loss, values
from ..errors import SpeckMttError

LOSSES: tuple[str, ...] = values(Loss)


def mean_output_ce(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CE of the time-mean output."""
    return F.cross_entropy(out.mean(1), target)


def tet_loss(out: torch.Tensor, target: torch.Tensor, lam: float = 1e-3, theta: float = 1.0) -> torch.Tensor:
    """TET: per-step CE averaged over t, plus lambda times the per-step MSE to the threshold theta."""
    batch, steps, classes = out.shape
    ce = F.cross_entropy(out.reshape(batch * steps, classes), target.repeat_interleave(steps))
    if lam == 0:
        return ce
    mse = F.mse_loss(out, torch.full_like(out, theta))
    return (1 - lam) * ce + lam * mse


def make_loss(name: str, tet_lambda: float = 1e-3, theta: float = 1.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "ce":
        return mean_output_ce
    if name == "tet":
        return partial(tet_loss, lam=tet_lambda, theta=theta)
    raise SpeckMttError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
