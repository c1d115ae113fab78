"""Statistics of event recordings, used to compare nmnist-sim against real N-MNIST recordings.

event_stats gives one number per statistic and recording; distributions() gives the samples a
statistic draws from a set of recordings (per recording, per saccade or per pixel), and
ks_distance compares two such sample sets.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import ks_2samp

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


SACCADE_EDGES_US = (0, 105_000, 208_000, 2**31)  # N-MNIST's three saccades (activity minima of the real set)


def events_per_saccade(events: np.ndarray) -> np.ndarray:
    """Events inside each of the three saccade windows."""
    return np.histogram(events["t"], bins=SACCADE_EDGES_US)[0]


def saccade_peaks_ms(events: np.ndarray, bin_us: int = 5_000) -> np.ndarray:
    """Time (ms) of the busiest 5 ms bin inside each saccade window: when the sweep crosses the digit."""
    t = events["t"].astype(np.int64)
    hist = np.bincount(t // bin_us, minlength=SACCADE_EDGES_US[2] // bin_us + 1)
    starts = [e // bin_us for e in SACCADE_EDGES_US[:3]] + [len(hist)]
    return np.array([(starts[k] + int(np.argmax(hist[starts[k]:starts[k + 1]])) + 0.5) * bin_us / 1000
                     if starts[k] < starts[k + 1] else np.nan for k in range(3)])


def pixel_intervals_us(events: np.ndarray) -> np.ndarray:
    """Intervals between consecutive events of one pixel (either polarity), all pixels pooled."""
    pixel = events["y"].astype(np.int64) * 65536 + events["x"]
    order = np.lexsort((events["t"], pixel))
    pixel, t = pixel[order], events["t"][order].astype(np.int64)
    return np.diff(t)[pixel[1:] == pixel[:-1]]


def isolated_fraction(events: np.ndarray, window_us: int = 5_000,
                      sensor_size: tuple[int, int, int] = NMNIST_SENSOR) -> float:
    """Fraction of events with no other event in their 3x3 pixel neighbourhood within the same or an
    adjacent 5 ms bin: background noise, since the digit's edges fire in spatio-temporal clusters."""
    if len(events) == 0:
        return 0.0
    w, h, _ = sensor_size
    tb = events["t"].astype(np.int64) // window_us
    grid = np.zeros((int(tb.max()) + 3, h + 2, w + 2), np.int32)
    np.add.at(grid, (tb + 1, events["y"].astype(np.int64) + 1, events["x"].astype(np.int64) + 1), 1)
    box = sum(np.roll(grid, (dt, dy, dx), axis=(0, 1, 2)) for dt in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    return float(np.mean(box[tb + 1, events["y"].astype(np.int64) + 1, events["x"].astype(np.int64) + 1] == 1))


def event_stats(events: np.ndarray) -> dict[str, float]:
    """One recording: its size, polarity balance, timing, spatial spread, per-pixel timing and noise."""
    t = events["t"].astype(np.int64)
    isi = pixel_intervals_us(events)
    return {
        "events": int(len(events)),
        "on_fraction": float(np.mean(events["p"] == 1)) if len(events) else 0.0,
        "duration_ms": float((t.max() - t.min()) / 1000) if len(t) else 0.0,
        "first_event_ms": float(np.percentile(t, 1) / 1000) if len(t) else 0.0,
        "bursts": count_bursts(t),
        "x_mean": float(events["x"].mean()) if len(t) else 0.0,
        "y_mean": float(events["y"].mean()) if len(t) else 0.0,
        "x_std": float(events["x"].std()) if len(t) else 0.0,
        "y_std": float(events["y"].std()) if len(t) else 0.0,
        "active_pixels": int(len(np.unique(events["y"].astype(np.int64) * 65536 + events["x"]))),
        "pixel_interval_median_ms": float(np.median(isi) / 1000) if len(isi) else 0.0,
        "polarity_overlap": polarity_overlap(events),
        "fast_reversals": fast_reversals(events),
        "isolated_fraction": isolated_fraction(events),
    }


def distributions(recordings: list[np.ndarray], max_intervals: int = 200) -> dict[str, np.ndarray]:
    """Samples of each statistic over a set of recordings: event_stats per recording, plus events and
    peak time per saccade and per-pixel intervals (log10 us; up to max_intervals per recording,
    evenly spaced, so every recording weighs the same)."""
    per = [event_stats(ev) for ev in recordings]
    out = {key: np.array([s[key] for s in per], dtype=float) for key in per[0]}
    out["events_per_saccade"] = np.concatenate([events_per_saccade(ev) for ev in recordings]).astype(float)
    out["saccade_peak_ms"] = np.concatenate([saccade_peaks_ms(ev) for ev in recordings])
    intervals = []
    for ev in recordings:
        isi = np.sort(pixel_intervals_us(ev))
        if len(isi):
            intervals.append(np.log10(1 + isi[np.linspace(0, len(isi) - 1, min(len(isi), max_intervals)).astype(int)]))
    out["pixel_interval_log10_us"] = np.concatenate(intervals) if intervals else np.zeros(0)
    return out


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance (scipy's ks_2samp statistic): the largest gap between
    the two empirical CDFs (0..1); NaN samples (a saccade without events) are left out."""
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(ks_2samp(a, b).statistic)


def summarize(samples: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """mean/std/min/max of each statistic's samples (from distributions)."""
    return {key: {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v)), "min": float(np.nanmin(v)),
                  "max": float(np.nanmax(v))} for key, v in samples.items() if len(v)}
