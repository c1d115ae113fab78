"""Events -> (T, 2, H, W) count frames (tonic ToFrame) and the frame-level augmentations."""

from __future__ import annotations

import numpy as np
import tonic
import torch


def to_frame_transform(sensor_size: tuple[int, int, int], n_frames: int) -> tonic.transforms.ToFrame:
    """THE framing of speck-mtt: T equal time bins of event counts (its repr keys the frame cache)."""
    return tonic.transforms.ToFrame(sensor_size=tuple(sensor_size), n_time_bins=n_frames)


def to_frames(events: np.ndarray, sensor_size: tuple[int, int, int], n_frames: int) -> np.ndarray:
    """(T, 2, H, W) int counts of one recording via tonic.transforms.ToFrame(n_time_bins=T)."""
    return to_frame_transform(sensor_size, n_frames)(events)


def flip_lr(frames: torch.Tensor, label: int, flip_label: tuple[int, ...]) -> tuple[torch.Tensor, int]:
    """Mirror frames in x (like tonic RandomFlipLR, x' = W-1-x) and remap the label accordingly."""
    return frames.flip(-1), flip_label[label]


def roll(frames: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Circular shift in y and x (the paper's CIFAR10-DVS 'roll' augmentation)."""
    return torch.roll(frames, shifts=(dy, dx), dims=(-2, -1))


def thin(frames: torch.Tensor, keep: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep each event with probability `keep` (binomial thinning of the counts): a recording with
    fewer events, as from a less sensitive sensor or a lower-contrast scene."""
    return torch.binomial(frames, torch.full_like(frames, keep), generator=generator)


def augment_frames(frames: torch.Tensor, label: int, flip_label: tuple[int, ...] | None, roll_px: int,
                   generator: torch.Generator | None = None, keep_min: float = 1.0) -> tuple[torch.Tensor, int]:
    """Random flip (p = 0.5, label remapped), roll by up to +-roll_px, and thinning to a fraction of
    the events drawn uniformly from [keep_min, 1] (1: none); torch RNG, so seedable."""
    if flip_label is not None and torch.rand((), generator=generator).item() < 0.5:
        frames, label = flip_lr(frames, label, flip_label)
    if roll_px > 0:
        dy, dx = torch.randint(-roll_px, roll_px + 1, (2,), generator=generator).tolist()
        frames = roll(frames, dy, dx)
    if keep_min < 1.0:
        keep = keep_min + (1.0 - keep_min) * torch.rand((), generator=generator).item()
        frames = thin(frames, keep, generator)
    return frames, label
