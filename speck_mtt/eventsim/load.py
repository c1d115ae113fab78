"""SynOps/s per core over sliding windows: the load a sample asks of each Speck core.

Each core processes a limited, unpublished number of synaptic operations per second; beyond it
the chip stalls and events arrive late or are lost. The simulator delivers every spike an input
event causes before the next input event, so all SynOps of event k happen at its timestamp t_k.
The load of a core at time t is the SynOps of the input events in the window (t - W, t], over W
(a step function that rises at each t_k and falls at t_k + W). Per sample and core: the peak of
that load, and the time it spends above a budget, over the span [t_first, t_last + W) in which
some window holds an event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_WINDOW_US = 1000.0


@dataclass(frozen=True)
class LoadSpec:
    """What to measure: the window W (us) and an optional budget (SynOps/s per core)."""

    window_us: float = DEFAULT_WINDOW_US
    budget: float | None = None


def per_event(trace: np.ndarray) -> np.ndarray:
    """(n_events, n_layers) SynOps of each input event from the kernels' running totals."""
    return np.diff(trace, axis=0, prepend=np.zeros((1, trace.shape[1]), trace.dtype))


def load_curve(times_us: np.ndarray, trace: np.ndarray, window_us: float) -> tuple[np.ndarray, np.ndarray]:
    """The step function: breakpoints (B,) in us and the load (B - 1, n_layers) in SynOps/s on
    [breaks[i], breaks[i + 1]); empty for an empty sample."""
    times = np.asarray(times_us, np.float64)
    if times.size == 0:
        return np.zeros(0), np.zeros((0, trace.shape[1]))
    totals = np.vstack([np.zeros((1, trace.shape[1])), np.asarray(trace, np.float64)])
    breaks = np.unique(np.concatenate([times, times + window_us]))
    starts = breaks[:-1]
    inside = totals[np.searchsorted(times, starts, "right")] - totals[np.searchsorted(times, starts - window_us, "right")]
    return breaks, inside / (window_us * 1e-6)


def sample_load(times_us: np.ndarray, trace: np.ndarray, spec: LoadSpec) -> dict[str, np.ndarray | float]:
    """Per layer of one sample: peak SynOps/s (the load is highest right at an event), time above
    the budget (us, NaN without one), and the span (us) it is measured over."""
    breaks, load = load_curve(times_us, trace, spec.window_us)
    n_layers = trace.shape[1]
    if breaks.size == 0:
        return {"peak": np.zeros(n_layers), "above_us": np.full(n_layers, np.nan if spec.budget is None else 0.0),
                "span_us": 0.0}
    widths = np.diff(breaks)
    above = np.full(n_layers, np.nan) if spec.budget is None else (widths[:, None] * (load > spec.budget)).sum(0)
    return {"peak": load.max(0), "above_us": above, "span_us": float(breaks[-1] - breaks[0])}


def summarize(peak: np.ndarray, above_us: np.ndarray, span_us: np.ndarray, synops: np.ndarray,
              cores: list[int | None], spec: LoadSpec) -> dict:
    """The per-core report over N samples: SynOps per sample, the peak SynOps/s (highest sample and
    mean of the per-sample peaks) and, with a budget, the share of the measured time above it."""
    n = max(len(peak), 1)
    span = float(np.sum(span_us))
    rows = []
    for layer, core in enumerate(cores):
        row = {"layer": layer, "core": core, "synops_per_sample": float(synops[:, layer].sum()) / n,
               "peak_synops_per_s": float(peak[:, layer].max()) if len(peak) else 0.0,
               "mean_peak_synops_per_s": float(peak[:, layer].sum()) / n}
        if spec.budget is not None:
            row["share_above_budget"] = float(np.sum(above_us[:, layer])) / span if span > 0 else 0.0
            row["samples_above_budget"] = int((above_us[:, layer] > 0).sum())
        rows.append(row)
    return {"window_us": spec.window_us, "budget_synops_per_s": spec.budget, "n_samples": len(peak), "cores": rows}
