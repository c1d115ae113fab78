"""The temporal grouping (docs/design.md#ttm-grouping): the ONE place where frame groups are defined.

The same grouping resamples spike tensors between MTT stages (mtt.ttm.TTM) and derives coarse
event frames (T) from frames cached at T_max, so training, data and evaluation always agree.
"""

from __future__ import annotations

from functools import lru_cache

import torch


@lru_cache(maxsize=4096)
def group_bounds(t_in: int, t_out: int) -> tuple[int, ...]:
    """Boundaries b_0..b_F of the F = min(t_in, t_out) groups over M = max(t_in, t_out) frames.

    b_i = round(i*M/F - 1e-5): exact .5 ties round down, e.g. 10 -> 3 gives (0, 3, 7, 10).
    """
    if t_in < 1 or t_out < 1:
        raise ValueError(f"time steps must be >= 1, got t_in={t_in}, t_out={t_out}")
    few, many = min(t_in, t_out), max(t_in, t_out)
    return tuple(int(round(i * many / few - 1e-5)) for i in range(few + 1))


@lru_cache(maxsize=4096)
def _group_index(t_in: int, t_out: int) -> tuple[int, ...]:
    """For each of the max(t_in, t_out) frames, the index of the group it belongs to."""
    b = group_bounds(t_in, t_out)
    return tuple(g for g in range(len(b) - 1) for _ in range(b[g + 1] - b[g]))


def resample_time(x: torch.Tensor, t_out: int, dim: int = 1) -> torch.Tensor:
    """Map x with T_in frames along `dim` to t_out frames.

    Downsampling sums each group (spike/event counts are preserved); upsampling copies input
    frame i to every output frame of group i; equal T is the identity (same tensor).
    """
    t_in = x.shape[dim]
    if t_in == t_out:
        return x
    index = torch.tensor(_group_index(t_in, t_out), device=x.device)
    if t_in > t_out:
        shape = list(x.shape)
        shape[dim] = t_out
        return x.new_zeros(shape).index_add_(dim, index, x)
    return x.index_select(dim, index)


def resample_time_random(x: torch.Tensor, t_out: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sum the T_in frames of x (B, T_in, ...) into t_out < T_in groups whose boundaries are drawn
    at random per sample (every group at least one frame; counts preserved).

    Training only: the chip has no frame boundaries at all, so a network that never sees the same
    cut twice cannot lean on where the cuts fall (the paper's "random accumulation of input
    frames"). Equal or larger t_out is the regular resample_time.
    """
    batch, t_in = x.shape[:2]
    if t_out >= t_in:
        return resample_time(x, t_out, dim=1)
    # t_out - 1 distinct cuts among the t_in - 1 gaps between frames; group = cuts at or before it
    order = torch.rand(batch, t_in - 1, generator=generator).argsort(1)[:, :t_out - 1].to(x.device)
    starts = torch.zeros(batch, t_in, dtype=torch.long, device=x.device).scatter_(1, order + 1, 1)
    group = starts.cumsum(1).view(batch, t_in, *[1] * (x.dim() - 2)).expand_as(x)
    return x.new_zeros((batch, t_out, *x.shape[2:])).scatter_add_(1, group, x)
