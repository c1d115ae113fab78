"""Summary statistics of event recordings, used to compare nmnist-sim against the real sample."""

from __future__ import annotations

import numpy as np


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


def event_stats(events: np.ndarray) -> dict[str, float]:
    """events, ON fraction, duration (ms, first to last event) and burst count of one recording."""
    t = events["t"].astype(np.int64)
    return {
        "events": int(len(events)),
        "on_fraction": float(np.mean(events["p"] == 1)) if len(events) else 0.0,
        "duration_ms": float((t.max() - t.min()) / 1000) if len(t) else 0.0,
        "bursts": count_bursts(t),
    }


def summarize(stats: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """mean/std/min/max of each statistic over many recordings."""
    out = {}
    for key in stats[0]:
        v = np.array([s[key] for s in stats], dtype=float)
        out[key] = {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}
    return out
