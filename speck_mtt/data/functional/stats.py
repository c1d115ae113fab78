"""Summary statistics of event recordings, used to compare nmnist-sim against the real sample."""

from __future__ import annotations

import numpy as np

from .frames import to_frames
from .nmnist_bin import NMNIST_SENSOR


def count_bursts(t_us: np.ndarray, bin_us: int = 10_000, frac: float = 0.15) -> int:
    """Number of activity bursts: runs of 10 ms bins (3-bin smoothed) above frac * the peak bin.

    N-MNIST's three saccades show up as three bursts (the real sample gives 3).
    """
    if len(t_us) == 0:
        return 0
    t = np.asarray(t_us, dtype=np.int64)
    hist = np.bincount((t - t.min()) // bin_us).astype(float)
    smooth = np.convolve(hist, np.ones(3) / 3, mode="same")
    above = smooth > frac * smooth.max()
    return int(above[0]) + int(np.count_nonzero(above[1:] & ~above[:-1]))


def polarity_overlap(events: np.ndarray, n_frames: int = 10,
                     sensor_size: tuple[int, int, int] = NMNIST_SENSOR) -> float:
    """Fraction of active (pixel, frame) cells holding both polarities, in speck-mtt's own frames
    (to_frames at T = n_frames).

    Such cells are where frames sum ON and OFF input away and an event-driven chip does not: this
    is the statistic that decides how far a time-stepped model's accuracy carries to the chip.
    """
    if len(events) == 0:
        return 0.0
    frames = to_frames(events, sensor_size, n_frames)  # (T, 2, H, W)
    active = (frames > 0).any(1).sum()
    return float(((frames[:, 0] > 0) & (frames[:, 1] > 0)).sum() / max(active, 1))


def fast_reversals(events: np.ndarray, within_us: int = 10_000) -> float:
    """Fraction of a pixel's polarity reversals (OFF then ON or back) that come within `within_us`."""
    pixel = events["y"].astype(np.int64) * (int(events["x"].max(initial=0)) + 1) + events["x"]
    order = np.lexsort((events["t"], pixel))
    pixel, p, t = pixel[order], events["p"][order], events["t"][order].astype(np.int64)
    reversal = (pixel[1:] == pixel[:-1]) & (p[1:] != p[:-1])
    return float(np.mean(np.diff(t)[reversal] < within_us)) if reversal.any() else 0.0


def event_stats(events: np.ndarray) -> dict[str, float]:
    """events, ON fraction, duration (ms, first to last event), burst count and the two temporal
    statistics above of one recording."""
    t = events["t"].astype(np.int64)
    return {
        "events": int(len(events)),
        "on_fraction": float(np.mean(events["p"] == 1)) if len(events) else 0.0,
        "duration_ms": float((t.max() - t.min()) / 1000) if len(t) else 0.0,
        "bursts": count_bursts(t),
        "polarity_overlap": polarity_overlap(events),
        "fast_reversals": fast_reversals(events),
    }


def summarize(stats: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """mean/std/min/max of each statistic over many recordings."""
    out = {}
    for key in stats[0]:
        v = np.array([s[key] for s in stats], dtype=float)
        out[key] = {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}
    return out
